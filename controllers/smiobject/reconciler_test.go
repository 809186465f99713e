package smiobject_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/index"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/controllers/status"
	"github.com/smi-operator/smi-operator/controllers/trafficsplit"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// backendCalls records what a reconcile asked of the backend: "Program ns/name" with the splits
// of the model it was handed, or "Forget ns/name".
type backendCalls struct {
	calls []string
	diags []mesh.Diagnostic // returned by Program
	err   error             // returned by Program
}

func (b *backendCalls) Program(_ context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(mesh.Settings{})
	var programs []string
	for _, s := range model.Splits {
		var backends []string
		for _, be := range s.Backends {
			backends = append(backends, fmt.Sprintf("%s:%d", be.Name, be.Weight))
		}
		programs = append(programs, s.Apex.Name+"→"+strings.Join(backends, ","))
	}
	b.calls = append(b.calls, fmt.Sprintf("Program %s/%s %v", split.Namespace, split.Name, programs))
	return b.diags, b.err
}

func (b *backendCalls) Forget(_ context.Context, ref mesh.ObjectRef) error {
	b.calls = append(b.calls, fmt.Sprintf("Forget %s %s/%s", ref.Kind, ref.Namespace, ref.Name))
	return nil
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
	cond := func(typ string, s metav1.ConditionStatus, reason string) string {
		return typ + "=" + string(s) + " " + reason
	}
	programmed := []string{
		cond(smi.ConditionAccepted, metav1.ConditionTrue, status.ReasonAccepted),
		cond(smi.ConditionResolvedRefs, metav1.ConditionTrue, status.ReasonResolvedRefs),
		cond(smi.ConditionProgrammed, metav1.ConditionTrue, status.ReasonProgrammed),
	}
	for _, tc := range []struct {
		name      string
		objects   []client.Object
		backend   backendCalls
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
		backend: backendCalls{diags: []mesh.Diagnostic{{
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
		backend:   backendCalls{err: fmt.Errorf("the API server is away")},
		wantCalls: []string{"Program shop/web [web→web-v1:1]"},
		wantErr:   true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			for _, add := range []func(*runtime.Scheme) error{hub.AddToScheme, corev1.AddToScheme, appsv1.AddToScheme} {
				if err := add(scheme); err != nil {
					t.Fatal(err)
				}
			}
			var patches [][]string
			b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objects...).WithStatusSubresource(&hub.TrafficSplit{}).
				WithInterceptorFuncs(interceptor.Funcs{
					SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
						var conds []string
						for _, c := range obj.(*hub.TrafficSplit).Status.Conditions {
							conds = append(conds, cond(c.Type, c.Status, c.Reason))
						}
						patches = append(patches, conds)
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
			backend := tc.backend
			r := &smiobject.Reconciler[*hub.TrafficSplit]{
				Kind: trafficsplit.Kind(), Client: c, Backend: &backend,
				Status:   status.Writer{Client: c, Recorder: recorder},
				Settings: func() mesh.Settings { return mesh.Settings{} },
			}
			req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: "web"}}
			runs := 1
			if tc.twice {
				runs = 2
			}
			for range runs {
				if _, err := r.Reconcile(context.Background(), req); (err != nil) != tc.wantErr {
					t.Fatalf("Reconcile() error = %v, want an error: %v", err, tc.wantErr)
				}
			}
			if diff := cmp.Diff(tc.wantCalls, backend.calls); diff != "" {
				t.Errorf("backend calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPatches, patches); diff != "" {
				t.Errorf("status patches (-want +got):\n%s", diff)
			}
			close(recorder.Events)
			var got []string
			for e := range recorder.Events {
				fields := strings.Fields(e)
				got = append(got, strings.Join(fields[:2], " ")) // type and reason
			}
			slices.Sort(got)
			want := slices.Clone(tc.wantEvents)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Events (-want +got):\n%s", diff)
			}
		})
	}
}
