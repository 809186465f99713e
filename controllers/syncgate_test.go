package controllers

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// TestSyncGateWaitsForEverythingListed: the xDS server is told it is synced only once every
// split, target and Service the cache held has been fed, counting those fed before the gate
// listed them, and not before.
func TestSyncGateWaitsForEverythingListed(t *testing.T) {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "shop", Name: name} }
	reader := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(
		&hub.TrafficSplit{ObjectMeta: meta("web")},
		&hub.TrafficTarget{ObjectMeta: meta("vault")},
		&corev1.Service{ObjectMeta: meta("web")},
	).Build()
	synced := make(chan struct{})
	gate := newSyncGate(reader, func() { close(synced) })
	splits := gatedBackend[*hub.TrafficSplit]{nopBackend[*hub.TrafficSplit]{}, smi.TrafficSplitKind, gate}
	targets := gatedBackend[*hub.TrafficTarget]{nopBackend[*hub.TrafficTarget]{}, smi.TrafficTargetKind, gate}
	services := gatedSink{nopSink{}, gate}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Fed before the gate looks: counts.
	if _, err := splits.Program(ctx, &hub.TrafficSplit{ObjectMeta: meta("web")}, nil); err != nil {
		t.Fatal(err)
	}
	go func() { _ = gate.Start(ctx) }()
	notYet := func(after string) {
		t.Helper()
		select {
		case <-synced:
			t.Fatalf("synced after %s, with more to feed", after)
		case <-time.After(200 * time.Millisecond):
		}
	}
	notYet("the split")
	services.SetService(types.NamespacedName{Namespace: "shop", Name: "web"}, nil, nil)
	notYet("the split and the Service")
	// Another object, not listed, changes nothing.
	if err := targets.Forget(ctx, mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: "shop", Name: "other"}); err != nil {
		t.Fatal(err)
	}
	notYet("an object the cache did not hold")
	if _, err := targets.Program(ctx, &hub.TrafficTarget{ObjectMeta: meta("vault")}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-synced:
	case <-time.After(5 * time.Second):
		t.Fatal("not synced once everything listed was fed")
	}
}

type nopBackend[T hub.Object] struct{}

func (nopBackend[T]) Program(context.Context, T, *mesh.Models) ([]mesh.Diagnostic, error) {
	return nil, nil
}
func (nopBackend[T]) Forget(context.Context, mesh.ObjectRef) error { return nil }

type nopSink struct{}

func (nopSink) SetService(types.NamespacedName, *corev1.Service, xds.Endpoints) {}
func (nopSink) DeleteService(types.NamespacedName)                              {}
