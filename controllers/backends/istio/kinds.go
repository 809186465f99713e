package istio

import (
	"fmt"
	"reflect"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Kinds are the Istio kinds the operator generates.
var Kinds = itemsOf(Lists())

// Lists are the list kinds of what the Istio backend generates, which it prunes.
func Lists() []client.ObjectList {
	return append(SplitGeneratedKinds(), TargetGeneratedKinds()...)
}

// itemsOf returns an object of each list's item type, so that the kinds are listed once.
func itemsOf(lists []client.ObjectList) []client.Object {
	out := make([]client.Object, 0, len(lists))
	for _, list := range lists {
		item := reflect.ValueOf(list).Elem().FieldByName("Items").Type().Elem()
		if item.Kind() == reflect.Pointer { // Istio's lists hold pointers
			item = item.Elem()
		}
		out = append(out, reflect.New(item).Interface().(client.Object))
	}
	return out
}

// Served says whether the cluster serves every Istio kind the Istio backend writes.
func Served(mgr manager.Manager) error {
	for _, obj := range Kinds {
		gvk, err := mgr.GetClient().GroupVersionKindFor(obj)
		if err != nil {
			return err
		}
		if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("the istio backend cannot run: the cluster does not serve %s (install Istio, or choose the xds backend)", gvk)
		}
	}
	return nil
}
