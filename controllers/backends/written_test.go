package backends

import (
	"context"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/owned"
)

// indexer is a cache's field indexer: like the manager's, it refuses an index it already has.
type indexer map[string]bool

func (ix indexer) IndexField(_ context.Context, obj client.Object, field string, _ client.IndexerFunc) error {
	key := fmt.Sprintf("%T/%s", obj, field)
	if ix[key] {
		return fmt.Errorf("indexer conflict: %s", key)
	}
	ix[key] = true
	return nil
}

// stubManager is the part of a manager Written.Start uses.
type stubManager struct {
	manager.Manager
	client  client.Client
	mapper  meta.RESTMapper
	indexer indexer
}

// newStubManager is a manager of a cluster that serves ConfigMaps, with no index yet.
func newStubManager(t *testing.T) stubManager {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	return stubManager{client: fake.NewClientBuilder().WithScheme(scheme).Build(), mapper: mapper, indexer: indexer{}}
}

func (m stubManager) GetClient() client.Client             { return m.client }
func (m stubManager) GetRESTMapper() meta.RESTMapper       { return m.mapper }
func (m stubManager) GetFieldIndexer() client.FieldIndexer { return m.indexer }

// countingController counts the watches added to it; refuseFirst has it refuse the first one.
type countingController struct {
	controller.Controller
	refuseFirst bool
	watches     *int
	refused     *bool
}

func (c countingController) Watch(source.Source) error {
	if c.refuseFirst && !*c.refused {
		*c.refused = true
		return errors.New("the first watch is refused")
	}
	*c.watches++
	return nil
}

// TestWrittenStartIsRetriedAfterItsWatchesFail: a Start that indexed the kinds and added some of
// their watches, then failed to add another, can be tried again: the indexes are not added a
// second time (the cache would refuse them, and the backend could never start), nor the watches
// added before the failure (their events would come twice).
func TestWrittenStartIsRetriedAfterItsWatchesFail(t *testing.T) {
	mgr := newStubManager(t)
	var first, second int
	refused := false
	w := &Written{Backend: v1alpha1.BackendIstio, Writer: owned.Writer{}, Lists: []client.ObjectList{&corev1.ConfigMapList{}},
		Indexes: []IndexStep{func(ctx context.Context, ix client.FieldIndexer) error {
			return ix.IndexField(ctx, &corev1.ConfigMap{}, "own", nil)
		}},
		Watches: func(manager.Manager, Controllers, ...predicate.Predicate) []Watch {
			return []Watch{
				{Controller: countingController{watches: &first}, Sources: []source.Source{nil}},
				{Controller: countingController{watches: &second, refuseFirst: true, refused: &refused}, Sources: []source.Source{nil}},
			}
		}}
	env := Env{Manager: mgr, Programming: func() bool { return true }}
	if err := w.Start(context.Background(), env); err == nil {
		t.Fatal("the first Start succeeded though a watch was refused")
	}
	if err := w.Start(context.Background(), env); err != nil {
		t.Errorf("Start again: %v", err)
	}
	if first != 1 || second != 1 {
		t.Errorf("after a retry the controllers have %d and %d watches, want 1 each", first, second)
	}
}

// TestWrittenStartIsRetriedAfterItsIndexesFail: a Start whose backend's own indexes failed part
// way, after owned.GeneratedByIndex and the backend's first index were added, can be tried again:
// the indexes added before the failure are not added a second time (the cache would refuse them,
// and the backend could never start).
func TestWrittenStartIsRetriedAfterItsIndexesFail(t *testing.T) {
	mgr := newStubManager(t)
	failed := false
	w := &Written{Backend: v1alpha1.BackendIstio, Writer: owned.Writer{}, Lists: []client.ObjectList{&corev1.ConfigMapList{}},
		Indexes: []IndexStep{
			func(ctx context.Context, ix client.FieldIndexer) error {
				return ix.IndexField(ctx, &corev1.ConfigMap{}, "first", nil)
			},
			func(ctx context.Context, ix client.FieldIndexer) error {
				if !failed {
					failed = true
					return errors.New("the backend's second index is refused once")
				}
				return ix.IndexField(ctx, &corev1.ConfigMap{}, "second", nil)
			},
		},
		Watches: func(manager.Manager, Controllers, ...predicate.Predicate) []Watch { return nil }}
	env := Env{Manager: mgr, Programming: func() bool { return true }}
	if err := w.Start(context.Background(), env); err == nil {
		t.Fatal("the first Start succeeded though an index was refused")
	}
	if err := w.Start(context.Background(), env); err != nil {
		t.Errorf("Start again: %v", err)
	}
	if len(mgr.indexer) != 3 {
		t.Errorf("indexes after a retry: %v, want owned.GeneratedByIndex and the backend's two", mgr.indexer)
	}
}
