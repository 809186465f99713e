// Package owned keeps the set of objects generated from one SMI object equal to what a translator
// wants: applied with server-side apply under one field manager, controlled by their source
// (owner reference), found again by label, pruned when no longer wanted. An object with a wanted
// name that the source does not control belongs to someone else: it is reported, never written.
package owned

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/controllers/recent"
)

// FieldManager is the server-side apply field manager of everything the operator writes.
const FieldManager = "smi-operator"

// Conflict is a wanted object that exists but is not controlled by the source.
type Conflict struct {
	Kind, Name string
	// Owner describes who controls it ("no controller" when nobody does).
	Owner string
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s %q already exists and belongs to %s", c.Kind, c.Name, c.Owner)
}

// Result says what a Sync did.
type Result struct {
	Conflicts []Conflict
	// Writes counts applies and deletes issued; 0 when everything was already as wanted.
	Writes int
}

// Writer syncs generated objects. Reader is the manager's cache: reading there lets a sync that
// changes nothing issue no request at all.
type Writer struct {
	Client client.Client
	Reader client.Reader
	Scheme *runtime.Scheme
	// Recent, when set, keeps a reconcile that runs before the cache saw its previous apply from
	// sending it again.
	Recent *recent.Writes
	// Busy, when set, marks each apply and delete in flight until the func it returns is called
	// (status.Deferred.Programming: statuses wait while the mesh is being written).
	Busy func() (done func())
}

func (w Writer) busy() (done func()) {
	if w.Busy == nil {
		return func() {}
	}
	return w.Busy()
}

// Sync makes the objects generated from source, of the kinds listed, exactly wanted: each wanted
// object is applied unless it is already as wanted, and each object labelled as generated from
// source, controlled by it and not wanted is deleted. wanted objects must be in source's namespace
// and carry the smi.Label* labels naming source.
func (w Writer) Sync(ctx context.Context, source client.Object, wanted []client.Object, kinds []client.ObjectList) (Result, error) {
	var res Result
	ownerRef, err := w.controllerRef(source)
	if err != nil {
		return res, err
	}
	keep := map[schema.GroupVersionKind][]string{}
	for _, obj := range wanted {
		gvk, err := apiutil.GVKForObject(obj, w.Scheme)
		if err != nil {
			return res, err
		}
		keep[gvk] = append(keep[gvk], obj.GetName())
		obj.SetOwnerReferences([]metav1.OwnerReference{ownerRef})

		existing, err := w.Scheme.New(gvk)
		if err != nil {
			return res, err
		}
		current, ok := existing.(client.Object)
		if !ok {
			return res, fmt.Errorf("%s is not an object kind", gvk)
		}
		err = w.Reader.Get(ctx, client.ObjectKeyFromObject(obj), current)
		cachedVersion := current.GetResourceVersion()
		switch {
		case apierrors.IsNotFound(err):
			cachedVersion = ""
		case err != nil:
			return res, err
		case !metav1.IsControlledBy(current, source):
			res.Conflicts = append(res.Conflicts, Conflict{Kind: gvk.Kind, Name: obj.GetName(), Owner: controllerOf(current)})
			continue
		default:
			same, err := upToDate(current, obj)
			if err != nil {
				return res, err
			}
			if same {
				w.forget(gvk, obj)
				continue
			}
		}
		applied, err := w.apply(ctx, obj, gvk, cachedVersion)
		if err != nil {
			return res, err
		}
		if applied {
			res.Writes++
		}
	}

	sourceGVK, err := apiutil.GVKForObject(source, w.Scheme)
	if err != nil {
		return res, err
	}
	controlled := func(o client.Object) bool { return metav1.IsControlledBy(o, source) }
	for _, list := range kinds {
		deleted, err := w.prune(ctx, source.GetNamespace(), generatedBy(sourceGVK.Kind, source.GetName()), list, controlled, keep)
		res.Writes += deleted
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func (w Writer) controllerRef(source client.Object) (metav1.OwnerReference, error) {
	gvk, err := apiutil.GVKForObject(source, w.Scheme)
	if err != nil {
		return metav1.OwnerReference{}, err
	}
	return *metav1.NewControllerRef(source, gvk), nil
}

// apply applies obj unless this writer already applied the same content while the cache showed
// cachedVersion (the cache has not caught up yet); it reports whether it sent a request.
func (w Writer) apply(ctx context.Context, obj client.Object, gvk schema.GroupVersionKind, cachedVersion string) (bool, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return false, err
	}
	u.SetGroupVersionKind(gvk)
	key := recentKey(gvk, obj)
	content := recent.Hash(u.Object)
	if w.Recent != nil && !w.Recent.Begin(key, content, cachedVersion) {
		return false, nil
	}
	done := w.busy()
	err = w.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership)
	done()
	if err != nil {
		w.forget(gvk, obj)
		return false, fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return true, nil
}

// NotCreated drops the Create events of generated objects: the operator created them itself (one
// event per object it writes, each of which would reconcile its source once more for nothing),
// or finds them when it starts, when it reconciles every SMI object anyway. Their updates and
// deletions, by hand, are what it must see and correct.
var NotCreated = predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }}

// OnlyDeleted keeps the Delete events only.
var OnlyDeleted = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	UpdateFunc:  func(event.UpdateEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// GeneratedByIndex indexes the operator's generated objects by "<source kind>/<source name label>"
// in the manager's cache; Sync and PruneAfterDelete find a source's objects through it.
const GeneratedByIndex = "smi.generatedBy"

func generatedBy(kind, name string) string {
	labels := smi.SourceLabels(kind, name)
	return labels[smi.LabelSourceKind] + "/" + labels[smi.LabelSourceName]
}

// IndexGenerated registers GeneratedByIndex for each kind of generated object.
func IndexGenerated(ctx context.Context, indexer client.FieldIndexer, kinds ...client.Object) error {
	for _, kind := range kinds {
		err := indexer.IndexField(ctx, kind, GeneratedByIndex, func(o client.Object) []string {
			labels := o.GetLabels()
			if labels[smi.LabelManagedBy] != smi.ManagedByValue {
				return nil
			}
			return []string{labels[smi.LabelSourceKind] + "/" + labels[smi.LabelSourceName]}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// PruneAfterDelete deletes what a deleted source generated: every object of the kinds listed that
// is labelled as generated from namespace/name of sourceKind. Garbage collection does the same
// through the owner references, where a cluster runs it; doing it here keeps deletion level-based
// and prompt, and covers clusters (and tests) without a garbage collector.
func (w Writer) PruneAfterDelete(ctx context.Context, sourceKind, namespace, name string, kinds []client.ObjectList) error {
	for _, list := range kinds {
		if _, err := w.prune(ctx, namespace, generatedBy(sourceKind, name), list, func(client.Object) bool { return true }, nil); err != nil {
			return err
		}
	}
	return nil
}

// DeleteAllGenerated deletes every object of the kinds listed, in every namespace, that the
// operator generated (labelled managed by it and controlled by an SMI object or a Namespace):
// what retiring a backend leaves behind. reader should be the API server itself, not the cache,
// so that an object applied just before cannot be missed.
func (w Writer) DeleteAllGenerated(ctx context.Context, reader client.Reader, kinds []client.ObjectList) (int, error) {
	deleted := 0
	for _, list := range kinds {
		if err := reader.List(ctx, list, client.MatchingLabels{smi.LabelManagedBy: smi.ManagedByValue}); err != nil {
			return deleted, err
		}
		items, err := metaItems(list)
		if err != nil {
			return deleted, err
		}
		gvk, err := w.itemKind(list)
		if err != nil {
			return deleted, err
		}
		for _, item := range items {
			if !generated(item) {
				continue // labelled by hand, or controlled by something else: not ours to delete
			}
			if err := w.delete(ctx, gvk, item); err != nil {
				return deleted, err
			}
			deleted++
		}
	}
	return deleted, nil
}

// prune deletes the objects in namespace with labels that owned says are the source's and keep
// does not name.
func (w Writer) prune(ctx context.Context, namespace, source string, list client.ObjectList,
	owned func(client.Object) bool, keep map[schema.GroupVersionKind][]string) (int, error) {
	// Through the index, not a label selector: a selector scans every object of the kind in the
	// namespace, on every reconcile. The items are only read, so the cache need not copy them.
	err := w.Reader.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{GeneratedByIndex: source},
		client.UnsafeDisableDeepCopy)
	if err != nil {
		return 0, err
	}
	items, err := metaItems(list)
	if err != nil {
		return 0, err
	}
	gvk, err := w.itemKind(list)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, item := range items {
		if !owned(item) || slices.Contains(keep[gvk], item.GetName()) {
			continue
		}
		// A copy: the item is the cache's own (the list did not copy it).
		if err := w.delete(ctx, gvk, item.DeepCopyObject().(client.Object)); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, nil
}

// delete deletes obj, of kind gvk, if it is still the object listed (same UID), and forgets the
// writes to it.
func (w Writer) delete(ctx context.Context, gvk schema.GroupVersionKind, obj client.Object) error {
	uid := obj.GetUID()
	defer w.busy()()
	if err := w.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	w.forget(gvk, obj)
	return nil
}

// itemKind is the kind of the items of list.
func (w Writer) itemKind(list client.ObjectList) (schema.GroupVersionKind, error) {
	listGVK, err := apiutil.GVKForObject(list, w.Scheme)
	if err != nil {
		return schema.GroupVersionKind{}, err
	}
	return listGVK.GroupVersion().WithKind(strings.TrimSuffix(listGVK.Kind, "List")), nil
}

// generated says whether obj is one the operator generated: labelled with its source and
// controlled by an SMI object or, for a namespace's baseline, a Namespace.
func generated(obj client.Object) bool {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || obj.GetLabels()[smi.LabelSourceKind] == "" {
		return false
	}
	switch ref.Kind {
	case smi.TrafficSplitKind, smi.TrafficTargetKind, smi.NamespaceSourceKind:
		return true
	}
	return false
}

func recentKey(gvk schema.GroupVersionKind, obj client.Object) recent.Key {
	return recent.Key{Kind: gvk.String(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// forget drops the memory of a write to obj: the cache shows it as written, or it was deleted.
func (w Writer) forget(gvk schema.GroupVersionKind, obj client.Object) {
	if w.Recent != nil {
		w.Recent.Forget(recentKey(gvk, obj))
	}
}

// upToDate reports whether current already has everything wanted sets: its spec, its labels and
// its controller reference. Fields the API server or other managers add do not count.
func upToDate(current, wanted client.Object) (bool, error) {
	if !isSubset(wanted.GetLabels(), current.GetLabels()) || !metav1.IsControlledBy(current, ownerOf(wanted)) {
		return false, nil
	}
	c, err := toUnstructured(current)
	if err != nil {
		return false, err
	}
	wu, err := toUnstructured(wanted)
	if err != nil {
		return false, err
	}
	return equality.Semantic.DeepEqual(c.Object["spec"], wu.Object["spec"]), nil
}

// ownerOf returns a stand-in object carrying the UID of wanted's controller reference.
func ownerOf(wanted client.Object) metav1.Object {
	owner := &metav1.ObjectMeta{}
	if ref := metav1.GetControllerOf(wanted); ref != nil {
		owner.UID = ref.UID
	}
	return owner
}

func isSubset(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func controllerOf(obj client.Object) string {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return fmt.Sprintf("%s %q", ref.Kind, ref.Name)
	}
	return "no controller"
}

// toUnstructured goes through JSON, not the reflection converter: Istio's specs are protobuf
// messages whose JSON form only their own marshalers produce.
func toUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(data, &u.Object); err != nil {
		return nil, err
	}
	// Only what the operator decides is applied: status belongs to the subresource, and these are
	// the server's.
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	return u, nil
}

func metaItems(list client.ObjectList) ([]client.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	items := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		items = append(items, o.(client.Object))
	}
	return items, nil
}
