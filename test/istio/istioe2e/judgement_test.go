package istioe2e

import (
	"context"
	"fmt"
	"github.com/smi-operator/smi-operator/apis/smi"
	"os"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// istiodEnv turns on istiod's own analysis (the analyzers of `istioctl analyze`, run in istiod on
// its live configuration), which writes what it finds into each Istio object's
// status.validationMessages, every second (its shortest interval).
var istiodEnv = []string{"PILOT_ENABLE_ANALYSIS=true", "PILOT_ANALYSIS_INTERVAL=1s"}

// generatedKinds are the kinds the operator writes.
var generatedKinds = []schema.GroupVersionKind{
	{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
	{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"},
	{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"},
	{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"},
}

// istiodFindsNothingWrong fails the test when istiod's analysis reports an error or a warning on
// any object the operator wrote in namespace. Analysis runs on a timer, and status is written
// only for objects with findings, so a probe shows when istiod has judged what is there now: a
// VirtualService routing to a Service that does not exist (IST0101), created after the operator's
// objects. Once the probe has its finding, the other objects of that analysis have theirs too
// (after a second more for their status writes).
func (m *meshEnv) istiodFindsNothingWrong(t *testing.T, namespace string) {
	t.Helper()
	ctx := context.Background()
	probe := &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "analysis-probe"},
		Spec: networkingapi.VirtualService{
			Hosts: []string{"analysis-probe." + namespace + ".svc.cluster.local"},
			Http: []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{
				{Destination: &networkingapi.Destination{Host: "no-such-service." + namespace + ".svc.cluster.local"}},
			}}},
		},
	}
	if err := m.client.Create(ctx, probe); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.client.Delete(ctx, probe); err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(generatedKinds[0])
		if err := m.client.Get(ctx, client.ObjectKeyFromObject(probe), got); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(findings(got, "ERROR")), "IST0101") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("istiod's analysis did not flag the probe VirtualService within a minute: status %v", got.Object["status"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)

	checked, bad := 0, false
	var keys []string // "namespace/name" of every object judged, as istiod's log names them
	for _, gvk := range generatedKinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := m.client.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{smi.LabelManagedBy: smi.ManagedByValue}); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			checked++
			obj := &list.Items[i]
			keys = append(keys, namespace+"/"+obj.GetName())
			if found := findings(obj, "ERROR", "WARNING"); len(found) > 0 {
				bad = true
				t.Errorf("istiod's analysis of %s %s/%s: %s", gvk.Kind, namespace, obj.GetName(), strings.Join(found, "; "))
			}
			if info := findings(obj, "INFO"); len(info) > 0 {
				t.Logf("istiod's analysis of %s %s/%s (info): %s", gvk.Kind, namespace, obj.GetName(), strings.Join(info, "; "))
			}
		}
	}
	if checked == 0 {
		t.Fatalf("the operator wrote no Istio object in %s to judge", namespace)
	}
	if lines := m.istiodComplaints(t, keys); len(lines) > 0 {
		bad = true
		t.Errorf("istiod's log complains about objects the operator wrote:\n%s", strings.Join(lines, "\n"))
	}
	if !bad {
		t.Logf("neither istiod's analysis nor its log finds an error or a warning on the %d Istio objects the operator wrote in %s", checked, namespace)
	}
}

// istiodComplaints are the warning and error lines of istiod's log that name one of keys
// ("namespace/name"), but for its analysis' own lines: analysis runs every second, also before a
// test's Pods exist, and what it finds now is judged on the objects' status instead.
func (m *meshEnv) istiodComplaints(t testing.TB, keys []string) []string {
	t.Helper()
	data, err := os.ReadFile(m.istiod.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "\twarn\t") && !strings.Contains(line, "\terror\t") || strings.Contains(line, "Configuration analysis") {
			continue
		}
		for _, key := range keys {
			if strings.Contains(line, key) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

// findings lists an Istio object's status.validationMessages of the given levels, as
// "CODE (level): description".
func findings(obj *unstructured.Unstructured, levels ...string) []string {
	messages, _, _ := unstructured.NestedSlice(obj.Object, "status", "validationMessages")
	var out []string
	for _, msg := range messages {
		fields, _ := msg.(map[string]any)
		level, _, _ := unstructured.NestedString(fields, "level")
		for _, want := range levels {
			if level == want {
				code, _, _ := unstructured.NestedString(fields, "type", "code")
				description, _, _ := unstructured.NestedString(fields, "description")
				out = append(out, fmt.Sprintf("%s (%s): %s", code, level, description))
			}
		}
	}
	return out
}
