package controllers

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// syncGate tells an xDS server it is synced (server.Server.Synced) once the reconcilers have fed
// it every TrafficSplit, TrafficTarget, TrafficPolicy, Service and Namespace the cache held when it started: until then a
// server built with server.Options.HoldUntilSynced answers no proxy, so that proxies connecting
// to a fresh operator keep their configuration instead of being told that whatever was not fed
// yet does not exist. It is the fixed --backend=xds wiring's; backends.Switch does the same for
// the servers it starts, with its pending set.
//
// Objects reconciled before the gate lists the cache count: each was fed as the cache had it then,
// no older than the listing.
type syncGate struct {
	reader client.Reader
	// synced is called once everything has been fed: the server's Synced.
	synced func()

	mu sync.Mutex
	// fed holds what was fed since Start last looked; nil once synced (nothing is kept then).
	fed map[backends.ObjectKey]bool
	// changed wakes Start when something was fed; one wake-up pending is enough.
	changed chan struct{}
}

func newSyncGate(reader client.Reader, synced func()) *syncGate {
	return &syncGate{reader: reader, synced: synced, fed: map[backends.ObjectKey]bool{}, changed: make(chan struct{}, 1)}
}

func (g *syncGate) record(kind, namespace, name string) {
	g.mu.Lock()
	if g.fed != nil {
		g.fed[backends.ObjectKey{Kind: kind, Namespace: namespace, Name: name}] = true
	}
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// Start lists what the cache holds (the manager starts it once its caches have synced), waits
// until all of it has been fed, and then tells the server.
func (g *syncGate) Start(ctx context.Context) error {
	want, err := g.list(ctx)
	if err != nil {
		return err
	}
	for {
		g.mu.Lock()
		for k := range want {
			if g.fed[k] {
				delete(want, k)
			}
		}
		g.fed = map[backends.ObjectKey]bool{} // what is left to wait for is in want
		if len(want) == 0 {
			g.fed = nil
		}
		g.mu.Unlock()
		if len(want) == 0 {
			g.synced()
			return nil
		}
		select {
		case <-g.changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// NeedLeaderElection is true: the reconcilers feeding the server run on the leader only.
func (g *syncGate) NeedLeaderElection() bool { return true }

func (g *syncGate) list(ctx context.Context) (map[backends.ObjectKey]bool, error) {
	keys, err := backends.ListObjects(ctx, g.reader, true)
	if err != nil {
		return nil, err
	}
	want := make(map[backends.ObjectKey]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	return want, nil
}

// gatedBackend records on the gate every object its backend has programmed or forgotten.
type gatedBackend[T hub.Object] struct {
	backend smiobject.Backend[T]
	kind    string
	gate    *syncGate
}

func (b gatedBackend[T]) Program(ctx context.Context, obj T, models *mesh.Models) ([]mesh.Diagnostic, error) {
	diags, err := b.backend.Program(ctx, obj, models)
	if err == nil {
		b.gate.record(b.kind, obj.GetNamespace(), obj.GetName())
	}
	return diags, err
}

func (b gatedBackend[T]) Forget(ctx context.Context, ref mesh.ObjectRef) error {
	err := b.backend.Forget(ctx, ref)
	if err == nil {
		b.gate.record(b.kind, ref.Namespace, ref.Name)
	}
	return err
}

// gatedSink records on the gate every Service its sink has been given or told is gone.
type gatedSink struct {
	sink service.Sink
	gate *syncGate
}

func (s gatedSink) SetService(key types.NamespacedName, svc *corev1.Service, endpoints xds.Endpoints) {
	s.sink.SetService(key, svc, endpoints)
	s.gate.record(backends.ServiceKind, key.Namespace, key.Name)
}

func (s gatedSink) DeleteService(key types.NamespacedName) {
	s.sink.DeleteService(key)
	s.gate.record(backends.ServiceKind, key.Namespace, key.Name)
}

// gatedNamespaces records on the gate every Namespace its sink has been given or told is gone.
type gatedNamespaces struct {
	sink namespace.Sink
	gate *syncGate
}

func (s gatedNamespaces) SetNamespace(ctx context.Context, ns *corev1.Namespace) error {
	err := s.sink.SetNamespace(ctx, ns)
	if err == nil {
		s.gate.record(backends.NamespaceKind, "", ns.Name)
	}
	return err
}

func (s gatedNamespaces) DeleteNamespace(ctx context.Context, name string) error {
	err := s.sink.DeleteNamespace(ctx, name)
	if err == nil {
		s.gate.record(backends.NamespaceKind, "", name)
	}
	return err
}
