package smiobject_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/controllers/trafficpolicy"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/controllers/traffictarget"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// recordingBackend records what a reconcile asked of the backend: "Program ns/name" with what the
// model it was handed holds (describe), or "Forget Kind ns/name".
type recordingBackend[T hub.Object] struct {
	describe func(mesh.Model) []string
	calls    []string
	diags    []mesh.Diagnostic // returned by Program
	err      error             // returned by Program
}

func (b *recordingBackend[T]) Program(_ context.Context, obj T, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(mesh.Settings{})
	b.calls = append(b.calls, fmt.Sprintf("Program %s/%s %v", obj.GetNamespace(), obj.GetName(), b.describe(model)))
	return b.diags, b.err
}

func (b *recordingBackend[T]) Forget(_ context.Context, ref mesh.ObjectRef) error {
	b.calls = append(b.calls, fmt.Sprintf("Forget %s %s/%s", ref.Kind, ref.Namespace, ref.Name))
	return nil
}

// splits describes a model's splits as "apex→backend:weight,…".
func splits(model mesh.Model) []string {
	var out []string
	for _, s := range model.Splits {
		var backends []string
		for _, be := range s.Backends {
			backends = append(backends, fmt.Sprintf("%s:%d", be.Name, be.Weight))
		}
		out = append(out, s.Apex.Name+"→"+strings.Join(backends, ","))
	}
	return out
}

// accessRules describes a model's access rules as "sources→destination (n HTTP matches) on
// workloads".
func accessRules(model mesh.Model) []string {
	var out []string
	for _, r := range model.AccessRules {
		var sources, workloads []string
		for _, s := range r.Sources {
			sources = append(sources, s.ServiceAccount)
		}
		for _, w := range r.Workloads {
			workloads = append(workloads, w.Kind+"/"+w.Name)
		}
		out = append(out, fmt.Sprintf("%s→%s (%d HTTP matches) on %s", strings.Join(sources, ","), r.Destination.ServiceAccount, len(r.HTTP), strings.Join(workloads, ",")))
	}
	return out
}

// indexer hands the cache's field indexes (index.Setup) to a fake client being built.
type indexer struct{ b *fake.ClientBuilder }

func (i indexer) IndexField(_ context.Context, obj client.Object, field string, fn client.IndexerFunc) error {
	i.b.WithIndex(obj, field, fn)
	return nil
}

func service(name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
}

func split(name string, created time.Time, backends ...string) *hub.TrafficSplit {
	s := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(created)},
		Spec:       splitv1alpha4.TrafficSplitSpec{Service: "web"},
	}
	for _, b := range backends {
		s.Spec.Backends = append(s.Spec.Backends, splitv1alpha4.TrafficSplitBackend{Service: b, Weight: 1})
	}
	return s
}

// TestReconcileTrafficSplit runs the reconciler on a table of cluster states and checks exactly
// what it asks of the backend and writes to the API server (status patches, with the conditions
// they set) and which Events it records: one reconcile, or, with twice, the same reconcile again
// on what the first wrote, which must send nothing.
func TestReconcileTrafficSplit(t *testing.T) {
	older, newer := time.Unix(1000, 0), time.Unix(2000, 0)
	deleting := split("web", older, "web-v1")
	deleting.DeletionTimestamp = &metav1.Time{Time: newer}
	deleting.Finalizers = []string{"example.com/hold"}
	for _, tc := range []struct {
		name      string
		objects   []client.Object
		backend   recordingBackend[*hub.TrafficSplit]
		twice     bool
		wantCalls []string
		// wantPatches are the status patches of shop/web, each as its conditions.
		wantPatches [][]string
		wantEvents  []string
		wantErr     bool
	}{{
		name:      "a split that does not exist is forgotten, and nothing is written",
		wantCalls: []string{"Forget TrafficSplit shop/web"},
	}, {
		name:    "a split being deleted is left to its deletion",
		objects: []client.Object{deleting, service("web"), service("web-v1")},
	}, {
		name:        "a split whose references resolve is programmed and reported Programmed, with one Event",
		objects:     []client.Object{split("web", older, "web-v1", "web-v2"), service("web"), service("web-v1"), service("web-v2")},
		wantCalls:   []string{"Program shop/web [web→web-v1:1,web-v2:1]"},
		wantPatches: [][]string{programmed},
		wantEvents:  []string{"Normal " + status.ReasonProgrammed},
	}, {
		name:        "a reconcile that changes nothing sends no request and records no Event",
		objects:     []client.Object{split("web", older, "web-v1"), service("web"), service("web-v1")},
		twice:       true,
		wantCalls:   []string{"Program shop/web [web→web-v1:1]", "Program shop/web [web→web-v1:1]"},
		wantPatches: [][]string{programmed},
		wantEvents:  []string{"Normal " + status.ReasonProgrammed},
	}, {
		name:      "a missing backend Service: the backend is told to program nothing, the split says why",
		objects:   []client.Object{split("web", older, "web-v1"), service("web")},
		wantCalls: []string{"Program shop/web []"},
		wantPatches: [][]string{{
			cond(smi.ConditionAccepted, metav1.ConditionTrue, status.ReasonAccepted),
			cond(smi.ConditionResolvedRefs, metav1.ConditionFalse, mesh.ReasonBackendNotFound),
			cond(smi.ConditionProgrammed, metav1.ConditionFalse, mesh.ReasonNoWeightedBackends),
		}},
		wantEvents: []string{"Warning " + mesh.ReasonBackendNotFound, "Warning " + mesh.ReasonNoWeightedBackends},
	}, {
		name: "the older split keeps the apex; the newer one programs nothing and is Conflicted",
		objects: []client.Object{split("web", newer, "web-v1"), split("old", older, "web-v2"),
			service("web"), service("web-v1"), service("web-v2")},
		wantCalls: []string{"Program shop/web []"},
		wantPatches: [][]string{{
			cond(smi.ConditionAccepted, metav1.ConditionFalse, mesh.ReasonConflicted),
			cond(smi.ConditionResolvedRefs, metav1.ConditionTrue, status.ReasonResolvedRefs),
			cond(smi.ConditionProgrammed, metav1.ConditionFalse, status.ReasonNotAccepted),
		}},
		wantEvents: []string{"Warning " + mesh.ReasonConflicted, "Warning " + status.ReasonNotAccepted},
	}, {
		name:    "what the backend reports lands in the status",
		objects: []client.Object{split("web", older, "web-v1"), service("web"), service("web-v1")},
		backend: recordingBackend[*hub.TrafficSplit]{diags: []mesh.Diagnostic{{
			Object: mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: "shop", Name: "web"}, Condition: smi.ConditionProgrammed,
			Reason: mesh.ReasonRejectedByProxies, Severity: mesh.SeverityWarning, Message: "1 xDS proxy rejects it",
		}}},
		wantCalls: []string{"Program shop/web [web→web-v1:1]"},
		wantPatches: [][]string{{
			cond(smi.ConditionAccepted, metav1.ConditionTrue, status.ReasonAccepted),
			cond(smi.ConditionResolvedRefs, metav1.ConditionTrue, status.ReasonResolvedRefs),
			cond(smi.ConditionProgrammed, metav1.ConditionFalse, mesh.ReasonRejectedByProxies),
		}},
		wantEvents: []string{"Warning " + mesh.ReasonRejectedByProxies},
	}, {
		name:      "a backend that fails: the error is returned for a retry, and no status is written",
		objects:   []client.Object{split("web", older, "web-v1"), service("web"), service("web-v1")},
		backend:   recordingBackend[*hub.TrafficSplit]{err: fmt.Errorf("the API server is away")},
		wantCalls: []string{"Program shop/web [web→web-v1:1]"},
		wantErr:   true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			backend := tc.backend
			backend.describe = splits
			reconcile(t, trafficsplit.Kind(), tc.objects, &backend, tc.twice).check(t, tc.wantCalls, tc.wantPatches, tc.wantEvents, tc.wantErr)
		})
	}
}

// run is what reconciling one object did: its backend calls, its status patches (each as the
// conditions it sets), its Events (type and reason, sorted) and the reconciles' errors.
type run struct {
	calls, events []string
	patches       [][]string
	errs          []error
}

// programmed are the conditions of an object programmed without a problem.
var programmed = []string{
	cond(smi.ConditionAccepted, metav1.ConditionTrue, status.ReasonAccepted),
	cond(smi.ConditionResolvedRefs, metav1.ConditionTrue, status.ReasonResolvedRefs),
	cond(smi.ConditionProgrammed, metav1.ConditionTrue, status.ReasonProgrammed),
}

// cond writes a condition as the tables expect it.
func cond(typ string, s metav1.ConditionStatus, reason string) string {
	return typ + "=" + string(s) + " " + reason
}

// reconcile reconciles shop/web of kind (twice: once more, on what the first wrote) over a fake
// API server holding objects, with the cache's indexes, the status writer and a recording Event
// sink; a write other than a status patch fails the reconcile.
func reconcile[T hub.Object](t *testing.T, kind smiobject.Kind[T], objects []client.Object, backend *recordingBackend[T], twice bool) run {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{hub.AddToScheme, corev1.AddToScheme, appsv1.AddToScheme, policyv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	var out run
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objects...).WithStatusSubresource(kind.New()).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				var conds []string
				for _, c := range obj.(hub.Object).GetStatus().Conditions {
					conds = append(conds, cond(c.Type, c.Status, c.Reason))
				}
				out.patches = append(out.patches, conds)
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
			Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
				return fmt.Errorf("the reconciler creates nothing")
			},
			Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error {
				return fmt.Errorf("the reconciler updates nothing")
			},
			Patch: func(context.Context, client.WithWatch, client.Object, client.Patch, ...client.PatchOption) error {
				return fmt.Errorf("the reconciler patches nothing but status")
			},
			Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
				return fmt.Errorf("the reconciler deletes nothing")
			},
		})
	if err := index.Setup(context.Background(), indexer{b}); err != nil {
		t.Fatal(err)
	}
	c := b.Build()
	recorder := events.NewFakeRecorder(16)
	r := &smiobject.Reconciler[T]{
		Kind: kind, Client: c, Backend: backend,
		Status:   status.Writer{Client: c, Recorder: recorder},
		Settings: func() mesh.Settings { return mesh.Settings{} },
	}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: "web"}}
	times := 1
	if twice {
		times = 2
	}
	for range times {
		_, err := r.Reconcile(context.Background(), req)
		out.errs = append(out.errs, err)
	}
	out.calls = backend.calls
	close(recorder.Events)
	for e := range recorder.Events {
		out.events = append(out.events, strings.Join(strings.Fields(e)[:2], " "))
	}
	slices.Sort(out.events)
	return out
}

// check compares a run with what a table row wants.
func (got run) check(t *testing.T, wantCalls []string, wantPatches [][]string, wantEvents []string, wantErr bool) {
	t.Helper()
	for _, err := range got.errs {
		if (err != nil) != wantErr {
			t.Errorf("Reconcile() error = %v, want an error: %v", err, wantErr)
		}
	}
	if diff := cmp.Diff(wantCalls, got.calls); diff != "" {
		t.Errorf("backend calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPatches, got.patches); diff != "" {
		t.Errorf("status patches (-want +got):\n%s", diff)
	}
	want := slices.Clone(wantEvents)
	slices.Sort(want)
	if diff := cmp.Diff(want, got.events); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}
}

func target(rules ...string) *hub.TrafficTarget {
	t := &hub.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 1},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "db", Namespace: "shop"},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "api", Namespace: "shop"}},
		},
	}
	for _, r := range rules {
		t.Spec.Rules = append(t.Spec.Rules, accessv1alpha3.TrafficTargetRule{Kind: smi.HTTPRouteGroupKind, Name: r})
	}
	return t
}

func routeGroup(name string) *hub.HTTPRouteGroup {
	return &hub.HTTPRouteGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "get", PathRegex: "/", Methods: []string{"GET"}}}}}
}

func deployment(name, serviceAccount string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Generation: 1},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{ServiceAccountName: serviceAccount}}}}
}

// TestReconcileTrafficTarget is TestReconcileTrafficSplit's table for the TrafficTarget kind.
func TestReconcileTrafficTarget(t *testing.T) {
	for _, tc := range []struct {
		name        string
		objects     []client.Object
		twice       bool
		wantCalls   []string
		wantPatches [][]string
		wantEvents  []string
	}{{
		name:      "a target that does not exist is forgotten, and nothing is written",
		wantCalls: []string{"Forget TrafficTarget shop/web"},
	}, {
		name:        "a target whose routes and destination workloads exist is programmed on them",
		objects:     []client.Object{target("reads"), routeGroup("reads"), deployment("db", "db"), deployment("web", "web")},
		wantCalls:   []string{"Program shop/web [api→db (1 HTTP matches) on Deployment/db]"},
		wantPatches: [][]string{programmed},
		wantEvents:  []string{"Normal " + status.ReasonProgrammed},
	}, {
		name:        "a reconcile that changes nothing sends no request and records no Event",
		objects:     []client.Object{target("reads"), routeGroup("reads"), deployment("db", "db")},
		twice:       true,
		wantCalls:   []string{"Program shop/web [api→db (1 HTTP matches) on Deployment/db]", "Program shop/web [api→db (1 HTTP matches) on Deployment/db]"},
		wantPatches: [][]string{programmed},
		wantEvents:  []string{"Normal " + status.ReasonProgrammed},
	}, {
		// SMI denies what no rule allows: the rule is programmed, allowing nothing through the
		// route that is not there.
		name:      "a missing route allows nothing, and the target says which",
		objects:   []client.Object{target("reads"), deployment("db", "db")},
		wantCalls: []string{"Program shop/web [api→db (0 HTTP matches) on Deployment/db]"},
		wantPatches: [][]string{{
			cond(smi.ConditionAccepted, metav1.ConditionTrue, status.ReasonAccepted),
			cond(smi.ConditionResolvedRefs, metav1.ConditionFalse, mesh.ReasonRouteNotFound),
			cond(smi.ConditionProgrammed, metav1.ConditionTrue, status.ReasonProgrammed),
		}},
		wantEvents: []string{"Warning " + mesh.ReasonRouteNotFound, "Normal " + status.ReasonProgrammed},
	}, {
		name:      "no workload runs as the destination yet: the rule governs the identity, Programmed=False says so",
		objects:   []client.Object{target("reads"), routeGroup("reads")},
		wantCalls: []string{"Program shop/web [api→db (1 HTTP matches) on ]"},
		wantPatches: [][]string{{
			cond(smi.ConditionAccepted, metav1.ConditionTrue, status.ReasonAccepted),
			cond(smi.ConditionResolvedRefs, metav1.ConditionTrue, status.ReasonResolvedRefs),
			cond(smi.ConditionProgrammed, metav1.ConditionFalse, mesh.ReasonNoWorkloads),
		}},
		wantEvents: []string{"Warning " + mesh.ReasonNoWorkloads},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			backend := recordingBackend[*hub.TrafficTarget]{describe: accessRules}
			reconcile(t, traffictarget.Kind(), tc.objects, &backend, tc.twice).check(t, tc.wantCalls, tc.wantPatches, tc.wantEvents, false)
		})
	}
}

func policy(name string, created time.Time, port int32) *policyv1alpha1.TrafficPolicy {
	p := &policyv1alpha1.TrafficPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(created)},
		Spec: policyv1alpha1.TrafficPolicySpec{
			TargetRef: policyv1alpha1.TargetRef{Kind: "Service", Name: "web"},
			Timeout:   ptr.To[policyv1alpha1.Duration]("1s"),
		},
	}
	if port != 0 {
		p.Spec.TargetRef.Port = &port
	}
	return p
}

// policiesAndSplits describes a model's policies as "policy on Service:port" and its splits as
// splits does: what a backend may merge a policy into.
func policiesAndSplits(model mesh.Model) []string {
	var out []string
	for _, p := range model.Policies {
		out = append(out, fmt.Sprintf("%s on %s:%d", p.Source.Name, p.Service.Name, p.Port))
	}
	return append(out, splits(model)...)
}

// TestReconcileTrafficPolicy is TestReconcileTrafficSplit's table for the TrafficPolicy kind: the
// model a policy is programmed from holds the policies of its Service (the older winning a port)
// and the splits naming the Service, whose objects a backend may merge it into.
func TestReconcileTrafficPolicy(t *testing.T) {
	older, newer := time.Unix(1000, 0), time.Unix(2000, 0)
	for _, tc := range []struct {
		name        string
		objects     []client.Object
		twice       bool
		wantCalls   []string
		wantPatches [][]string
		wantEvents  []string
	}{{
		name:      "a policy that does not exist is forgotten, and nothing is written",
		wantCalls: []string{"Forget TrafficPolicy shop/web"},
	}, {
		name:        "a policy of a Service that a split routes is programmed with the split in its model",
		objects:     []client.Object{policy("web", older, 0), split("canary", older, "web-v1"), service("web"), service("web-v1")},
		wantCalls:   []string{"Program shop/web [web on web:0 web→web-v1:1]"},
		wantPatches: [][]string{programmed},
		wantEvents:  []string{"Normal " + status.ReasonProgrammed},
	}, {
		name:        "a reconcile that changes nothing sends no request and records no Event",
		objects:     []client.Object{policy("web", older, 0), service("web")},
		twice:       true,
		wantCalls:   []string{"Program shop/web [web on web:0]", "Program shop/web [web on web:0]"},
		wantPatches: [][]string{programmed},
		wantEvents:  []string{"Normal " + status.ReasonProgrammed},
	}, {
		name:      "an older policy of the whole Service keeps it; the newer one is Conflicted, and its backend is handed a model programming nothing of it",
		objects:   []client.Object{policy("web", newer, 80), policy("old", older, 0), service("web")},
		wantCalls: []string{"Program shop/web []"},
		wantPatches: [][]string{{
			cond(smi.ConditionAccepted, metav1.ConditionFalse, mesh.ReasonConflicted),
			cond(smi.ConditionResolvedRefs, metav1.ConditionTrue, status.ReasonResolvedRefs),
			cond(smi.ConditionProgrammed, metav1.ConditionFalse, status.ReasonNotAccepted),
		}},
		wantEvents: []string{"Warning " + mesh.ReasonConflicted, "Warning " + status.ReasonNotAccepted},
	}, {
		name:      "a missing Service: nothing is programmed, the policy says why",
		objects:   []client.Object{policy("web", older, 0)},
		wantCalls: []string{"Program shop/web []"},
		wantPatches: [][]string{{
			cond(smi.ConditionAccepted, metav1.ConditionTrue, status.ReasonAccepted),
			cond(smi.ConditionResolvedRefs, metav1.ConditionFalse, mesh.ReasonServiceNotFound),
			cond(smi.ConditionProgrammed, metav1.ConditionFalse, mesh.ReasonServiceNotFound),
		}},
		// One Event per condition that changed: ResolvedRefs and Programmed.
		wantEvents: []string{"Warning " + mesh.ReasonServiceNotFound, "Warning " + mesh.ReasonServiceNotFound},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			backend := recordingBackend[*policyv1alpha1.TrafficPolicy]{describe: policiesAndSplits}
			reconcile(t, trafficpolicy.Kind(), tc.objects, &backend, tc.twice).check(t, tc.wantCalls, tc.wantPatches, tc.wantEvents, false)
		})
	}
}
