package istioe2e

import (
	"context"
	"fmt"
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

	"github.com/smi-operator/smi-operator/apis/smi"
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

// istiodFindsNothingWrong fails the test when istiod finds fault with an object the operator
// wrote in namespace (istiodJudgement).
func (m *meshEnv) istiodFindsNothingWrong(t *testing.T, namespace string) {
	t.Helper()
	j := m.istiodJudgement(t, namespace)
	for _, f := range j.analysis {
		t.Errorf("istiod's analysis of %s", f)
	}
	if len(j.log) > 0 {
		t.Errorf("istiod's log complains about objects the operator wrote:\n%s", strings.Join(j.log, "\n"))
	}
	if len(j.analysis) == 0 && len(j.log) == 0 {
		t.Logf("neither istiod's analysis nor its log finds an error or a warning on the %d Istio objects the operator wrote in %s", j.checked, namespace)
	}
}

// judgement is what istiod says of the objects labelled as the operator's in one namespace.
type judgement struct {
	// checked is how many objects were judged.
	checked int
	// analysis are the errors and warnings of istiod's analysis, "<Kind> <namespace>/<name>:
	// <findings>", one per object that has any.
	analysis []string
	// log are the warning and error lines of istiod's log that name one of them.
	log []string
}

// istiodJudgement judges every Istio object labelled as written by the operator in namespace,
// by istiod's analysis and its log. Analysis runs on a timer, and status is written only for
// objects with findings, so a probe shows when istiod has judged what is there now: a
// VirtualService routing to a Service that does not exist (IST0101), created after the
// operator's objects. Once the probe has its finding, the other objects of that analysis have
// theirs too (after a second more for their status writes). It fails the test when there is no
// object to judge.
func (m *meshEnv) istiodJudgement(t *testing.T, namespace string) judgement {
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

	var j judgement
	var keys []string // "namespace/name" of every object judged, as istiod's log names them
	for _, gvk := range generatedKinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := m.client.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{smi.LabelManagedBy: smi.ManagedByValue}); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			j.checked++
			obj := &list.Items[i]
			keys = append(keys, namespace+"/"+obj.GetName())
			if found := findings(obj, "ERROR", "WARNING"); len(found) > 0 {
				j.analysis = append(j.analysis, fmt.Sprintf("%s %s/%s: %s", gvk.Kind, namespace, obj.GetName(), strings.Join(found, "; ")))
			}
			if info := findings(obj, "INFO"); len(info) > 0 {
				t.Logf("istiod's analysis of %s %s/%s (info): %s", gvk.Kind, namespace, obj.GetName(), strings.Join(info, "; "))
			}
		}
	}
	if j.checked == 0 {
		t.Fatalf("the operator wrote no Istio object in %s to judge", namespace)
	}
	j.log = m.istiodComplaints(t, keys)
	return j
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
// "CODE (level)", with ": description" when there is one.
func findings(obj *unstructured.Unstructured, levels ...string) []string {
	messages, _, _ := unstructured.NestedSlice(obj.Object, "status", "validationMessages")
	var out []string
	for _, msg := range messages {
		fields, _ := msg.(map[string]any)
		level, _, _ := unstructured.NestedString(fields, "level")
		for _, want := range levels {
			if level == want {
				code, _, _ := unstructured.NestedString(fields, "type", "code")
				finding := fmt.Sprintf("%s (%s)", code, level)
				if description, _, _ := unstructured.NestedString(fields, "description"); description != "" {
					finding += ": " + description // istiod at the pin writes only the code and level
				}
				out = append(out, finding)
			}
		}
	}
	return out
}

// TestJudgementCanFail: the judgement that istiodFindsNothingWrong passes on the operator's
// objects can fail, in both its parts. Two VirtualServices written directly, not by the operator,
// but labelled as the operator's (smi.SourceLabels): one invalid (a URI regex that does not
// compile; the CRD's schema lets it through, Istio's validation does not), which istiod's
// analysis reports as an error; one valid but dangling (its one http route delegates to a
// VirtualService that does not exist), which istiod's log warns about by name.
func TestJudgementCanFail(t *testing.T) {
	m := start(t)
	ctx := context.Background()
	ns := m.namespace(t, "judgement-can-fail")
	invalid := &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "invalid", Labels: smi.SourceLabels(smi.TrafficSplitKind, "invalid")},
		Spec: networkingapi.VirtualService{
			Hosts: []string{host(ns, "apex")},
			Http: []*networkingapi.HTTPRoute{{
				Match: []*networkingapi.HTTPMatchRequest{{Uri: &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: "/api/("}}}},
				Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: host(ns, "apex")}}},
			}},
		},
	}
	dangling := &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dangling", Labels: smi.SourceLabels(smi.TrafficSplitKind, "dangling")},
		Spec: networkingapi.VirtualService{
			Hosts: []string{host(ns, "other")},
			Http:  []*networkingapi.HTTPRoute{{Delegate: &networkingapi.Delegate{Name: "no-such-delegate", Namespace: ns}}},
		},
	}
	for _, vs := range []*networkingv1.VirtualService{invalid, dangling} {
		if err := m.client.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := m.client.Delete(ctx, vs); err != nil {
				t.Error(err)
			}
		})
	}
	j := m.istiodJudgement(t, ns)
	// IST0106 is Istio's SchemaValidationError (IST0101, the apex Service not found, is there too).
	if about := naming(naming(j.analysis, "VirtualService "+ns+"/invalid:"), "IST0106"); len(about) == 0 {
		t.Errorf("istiod's analysis did not find VirtualService %s/invalid invalid (IST0106); its findings: %v", ns, j.analysis)
	} else {
		t.Logf("istiod's analysis, as it must: %s", strings.Join(about, "; "))
	}
	if about := naming(j.log, ns+"/dangling"); len(about) == 0 {
		t.Errorf("istiod's log has no warning or error naming %s/dangling", ns)
	} else {
		t.Logf("istiod's log, as it must:\n%s", strings.Join(about, "\n"))
	}
	t.Logf("all that the judgement reports here: analysis %v, log %v", j.analysis, j.log)
}

// naming are the lines holding s.
func naming(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
