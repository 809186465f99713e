// Package owned keeps the set of objects generated from one SMI object equal to what a translator
// wants: created, then kept with server-side apply, under one field manager, controlled by their
// source (owner reference), found again by label, pruned when no longer wanted. An object with a
// wanted name that the source does not control belongs to someone else: it is reported, never
// written, even while the manager's cache does not show it yet (the API server refuses a write to
// an object other than the one the cache showed, and then says whose it is).
package owned

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/controllers/unobserved"
	"github.com/smi-operator/smi-operator/internal/objectjson"
)

// FieldManager is the server-side apply field manager of everything the operator writes.
const FieldManager = "smi-operator"

// Conflict is a wanted object that exists but is not controlled by the source.
type Conflict struct {
	Kind, Name string
	// OwnerKind and OwnerName name its controller; "" when nobody controls it.
	OwnerKind, OwnerName string
}

func (c Conflict) String() string {
	owner := "no controller"
	if c.OwnerKind != "" {
		owner = fmt.Sprintf("%s %q", c.OwnerKind, c.OwnerName)
	}
	return fmt.Sprintf("%s %q already exists and belongs to %s", c.Kind, c.Name, owner)
}

// Result says what a Sync did.
type Result struct {
	Conflicts []Conflict
	// Writes counts the objects created, applied or deleted; 0 when everything was already as wanted.
	Writes int
}

// Writer syncs generated objects. Reader is the manager's cache: reading there lets a sync that
// changes nothing issue no request at all. APIReader reads the API server itself, uncached: when
// the server refuses a write because the object is not the one the cache showed, only the server
// can say whose the object is now.
type Writer struct {
	Client    client.Client
	Reader    client.Reader
	APIReader client.Reader
	Scheme    *runtime.Scheme
	// Unobserved, when set, keeps a reconcile that runs before the cache saw its previous write from
	// sending it again.
	Unobserved *unobserved.Writes
	// LastWritten, when set, lets ChangesToCorrect drop the watch events that leave an object as
	// Sync last left it.
	LastWritten *LastWritten
	// Busy, when set, marks each write and delete in flight until the func it returns is called
	// (status.WriteQueue.Programming: statuses wait while the mesh is being written).
	Busy func() (done func())
}

func (w Writer) busy() (done func()) {
	if w.Busy == nil {
		return func() {}
	}
	return w.Busy()
}

// Sync makes the objects generated from source, of the kinds listed, exactly wanted: each wanted
// object is created, or applied to the object source controls, unless it is already as wanted;
// each one someone else has is reported as a Conflict; and each object labelled as generated from
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
		want, err := wantedOf(gvk, obj)
		if err != nil {
			return res, err
		}

		cached, err := w.get(ctx, w.Reader, gvk, client.ObjectKeyFromObject(obj))
		if err != nil {
			return res, err
		}
		if cached != nil {
			if conflict := conflictOf(gvk, cached, source); conflict != nil {
				res.Conflicts = append(res.Conflicts, *conflict)
				w.LastWritten.takenOver(unobservedKey(gvk, obj), cached)
				continue
			}
			same, err := want.matches(cached)
			if err != nil {
				return res, err
			}
			if same {
				// The cache shows the write: nothing is in flight any more. What the watch filter
				// matched stays (record keeps it for the same summary).
				if w.Unobserved != nil {
					w.Unobserved.Forget(want.key())
				}
				w.LastWritten.record(want.key(), want.summary)
				continue
			}
		}
		// Recorded before the write is sent, as its watch event may come before its answer; the
		// object showing want before then is someone else writing what the source wants anyway.
		// write forgets it if nothing was written.
		w.LastWritten.record(unobservedKey(gvk, obj), want.summary)
		sent, conflict, err := w.write(ctx, source, want, cached)
		if err != nil {
			return res, err
		}
		if conflict != nil {
			res.Conflicts = append(res.Conflicts, *conflict)
		}
		if sent {
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

// get reads the object of kind gvk named key through reader; nil when there is none.
func (w Writer) get(ctx context.Context, reader client.Reader, gvk schema.GroupVersionKind, key client.ObjectKey) (client.Object, error) {
	o, err := w.Scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	obj, ok := o.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%s is not an object kind", gvk)
	}
	if err := reader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

// wanted is an object Sync writes: its kind, its content as sent and the summary of that.
type wanted struct {
	gvk     schema.GroupVersionKind
	content *unstructured.Unstructured
	summary
}

// wantedOf converts obj, of kind gvk and carrying its controller reference, for sending once.
func wantedOf(gvk schema.GroupVersionKind, obj client.Object) (wanted, error) {
	u, err := objectjson.Unstructured(obj)
	if err != nil {
		return wanted{}, err
	}
	u.SetGroupVersionKind(gvk)
	return wanted{gvk: gvk, content: u, summary: summaryOf(u)}, nil
}

func (want wanted) key() unobserved.Key { return unobservedKey(want.gvk, want.content) }

// write sends want, which the cache shows as cached (nil: not at all), unless this writer already
// sent the same content while the cache showed that (the cache has not caught up yet). It
// reports whether it sent it, or the conflict that kept it from sending it.
func (w Writer) write(ctx context.Context, source client.Object, want wanted, cached client.Object) (bool, *Conflict, error) {
	cachedVersion := ""
	if cached != nil {
		cachedVersion = cached.GetResourceVersion()
	}
	if w.Unobserved != nil && !w.Unobserved.Begin(want.key(), unobserved.Hash(want.content.Object), cachedVersion) {
		return false, nil, nil
	}
	defer w.busy()()
	sent, conflict, err := w.send(ctx, source, want, cached)
	if err != nil || conflict != nil {
		// Nothing was written: the next reconcile must try again, whatever the cache shows.
		w.forget(want.gvk, want.content)
	}
	if err != nil {
		return false, nil, fmt.Errorf("writing %s %s/%s: %w", want.gvk.Kind, want.content.GetNamespace(), want.content.GetName(), err)
	}
	return sent, conflict, nil
}

// send writes want to live, the object the cache shows (nil: none). The API server refuses the
// write when the object is not live any more: created, replaced or deleted since the cache
// looked. The server's object then decides, once: someone else's is a conflict, left as it is;
// the source's own is written as the server has it.
func (w Writer) send(ctx context.Context, source client.Object, want wanted, live client.Object) (bool, *Conflict, error) {
	for retried := false; ; retried = true {
		err := w.createOrApply(ctx, want, live)
		if err == nil || retried || !refusedAsNotLive(err) {
			return err == nil, nil, err
		}
		onServer, getErr := w.get(ctx, w.APIReader, want.gvk, client.ObjectKeyFromObject(want.content))
		if getErr != nil {
			return false, nil, fmt.Errorf("%w; reading it from the API server: %w", err, getErr)
		}
		if sameObject(onServer, live) {
			return false, nil, err // the refusal is about what was sent, not about which object is there
		}
		if onServer != nil {
			if conflict := conflictOf(want.gvk, onServer, source); conflict != nil {
				return false, conflict, nil
			}
			if same, err := want.matches(onServer); err != nil || same {
				return false, nil, err
			}
		}
		live = onServer
	}
}

// refusedAsNotLive says whether err may be the API server's refusal of createOrApply's write
// because the object is not the one given: AlreadyExists for a Create; for an apply carrying a
// UID, Conflict when no object has the name and Invalid (metadata.uid is immutable) when another
// object has it.
// Any other Invalid (a spec the server refuses) is the write's own fault: reading the object
// again would only cost a request on every reconcile.
func refusedAsNotLive(err error) bool {
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		return true
	}
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Field == "metadata.uid" {
			return true
		}
	}
	return false
}

// createOrApply writes want to live. Without live it creates the object, never applies it: an
// apply would take over an object of that name that someone created since the cache looked,
// where a Create fails. Otherwise it applies want with force to live only: carrying live's UID,
// the apply fails on any other object of that name.
func (w Writer) createOrApply(ctx context.Context, want wanted, live client.Object) error {
	if live == nil {
		return w.Client.Create(ctx, want.content.DeepCopy(), client.FieldOwner(FieldManager))
	}
	applied, err := w.applyTo(ctx, want.content, live.GetUID())
	if err != nil {
		return err
	}
	return w.handOverCreatedFields(ctx, want, applied)
}

// applyTo applies u with force to the object with uid, and returns the object the server answers.
func (w Writer) applyTo(ctx context.Context, u *unstructured.Unstructured, uid types.UID) (*unstructured.Unstructured, error) {
	applied := u.DeepCopy()
	applied.SetUID(uid)
	err := w.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(applied), client.FieldOwner(FieldManager), client.ForceOwnership)
	return applied, err
}

// handOverCreatedFields finishes an apply that left applied, the object the server answered, other
// than wanted because of fields its creation set. The API server records a Create's fields under
// an Update entry of FieldManager, apart from the Apply entry of its applies, and an apply removes
// only fields no other entry owns: a field the Create set and the apply no longer sends stays. The
// Create's fields are then moved into the Apply entry (client-go's csaupgrade, made for the same
// move from kubectl's client-side apply), and want is applied again. An object never needing that
// costs no request more.
func (w Writer) handOverCreatedFields(ctx context.Context, want wanted, applied *unstructured.Unstructured) error {
	if same, err := want.matches(applied); err != nil || same {
		return err
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(applied, sets.New(FieldManager), FieldManager)
	if err != nil || patch == nil {
		return err // nil: no Create entry; whatever differs is someone else's field
	}
	// The patch replaces metadata.resourceVersion with applied's: it fails if the object changed since.
	if err := w.Client.Patch(ctx, applied, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return err
	}
	_, err = w.applyTo(ctx, want.content, applied.GetUID())
	return err
}

// ChangesToCorrect is a predicate for the watches of generated objects. It drops the updates
// that leave an object as Sync last left it (LastWritten; with none, it drops nothing): the event
// of that very write, which would otherwise reconcile its source once more for nothing, and
// changes to what Sync does not compare (status, annotations). It passes every other event and,
// for a deletion, drops what this writer knows of the object: Unobserved holds a write back while
// the cache shows the object as it was when the write was sent, and a create sent when the cache
// showed none, followed by a deletion before any reconcile saw the created object, would leave the
// cache showing none again, and the object would never be written back. A writer of objects whose
// status the operator reads, every update of which must reach their source, has no LastWritten.
func (w Writer) ChangesToCorrect() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			gvk, err := apiutil.GVKForObject(e.ObjectNew, w.Scheme)
			return err != nil || !w.LastWritten.leftAsRecorded(unobservedKey(gvk, e.ObjectNew), e.ObjectNew)
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			if gvk, err := apiutil.GVKForObject(e.Object, w.Scheme); err == nil {
				w.forget(gvk, e.Object)
			}
			return true
		},
	}
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
			if !Generated(item) {
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

// Generated says whether obj is one the operator generated: labelled with its source and
// controlled by an SMI object, a TrafficPolicy or, for a namespace's baseline, a Namespace.
func Generated(obj client.Object) bool {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || obj.GetLabels()[smi.LabelSourceKind] == "" {
		return false
	}
	switch ref.Kind {
	case smi.TrafficSplitKind, smi.TrafficTargetKind, policyv1alpha1.TrafficPolicyKind, smi.NamespaceSourceKind:
		return true
	}
	return false
}

func unobservedKey(gvk schema.GroupVersionKind, obj client.Object) unobserved.Key {
	return unobserved.Key{Kind: gvk.String(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// forget drops the memory of a write to obj: the cache shows it as written, it was deleted, or
// the write failed.
func (w Writer) forget(gvk schema.GroupVersionKind, obj client.Object) {
	key := unobservedKey(gvk, obj)
	if w.Unobserved != nil {
		w.Unobserved.Forget(key)
	}
	w.LastWritten.drop(key)
}

// summary is what Sync compares of a wanted object with the one in the cluster: its whole spec
// (hashed: a field someone else adds there counts), its labels and its controller reference.
// Other metadata and the status do not count.
type summary struct {
	spec   [sha256.Size]byte
	labels map[string]string
	owner  types.UID
}

// summaryOf summarises content, a wanted object as sent.
func summaryOf(content *unstructured.Unstructured) summary {
	s := summary{spec: unobserved.Hash(content.Object["spec"]), labels: maps.Clone(content.GetLabels())}
	if ref := metav1.GetControllerOf(content); ref != nil {
		s.owner = ref.UID
	}
	return s
}

// matches says whether current has everything s was summarised from sets.
func (s summary) matches(current client.Object) (bool, error) {
	if !s.metadataMatches(current) {
		return false, nil
	}
	spec, err := specHash(current)
	return spec == s.spec, err
}

func (s summary) equal(other summary) bool {
	return s.spec == other.spec && s.owner == other.owner && maps.Equal(s.labels, other.labels)
}

// metadataMatches says whether current has the labels and the controller s was summarised from.
func (s summary) metadataMatches(current client.Object) bool {
	return isSubset(s.labels, current.GetLabels()) && metav1.IsControlledBy(current, &metav1.ObjectMeta{UID: s.owner})
}

// specHash hashes obj's spec as JSON (unobserved.Hash): specs equal as JSON, typed or not, hash
// alike (an empty list and a missing one do not; the API server drops neither from what it
// stores).
func specHash(obj client.Object) ([sha256.Size]byte, error) {
	u, err := objectjson.Unstructured(obj)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return unobserved.Hash(u.Object["spec"]), nil
}

// LastWritten remembers, for each generated object, the summary of what Sync last wrote there or
// found there as wanted. Safe for concurrent use; the zero value is ready, and a nil one remembers
// nothing.
type LastWritten struct {
	mu      sync.Mutex
	objects map[unobserved.Key]*lastWrite
}

// lastWrite is what LastWritten keeps of one object: the summary, and the generation of the
// object (by UID) whose spec was last found to hash as the summary's. The API server moves an
// object's generation whenever its spec changes, so an update at that generation (istiod's
// status, an annotation) leaves the spec as written, and its hash need not be taken again.
type lastWrite struct {
	summary
	matchedUID        types.UID
	matchedGeneration int64
}

func (l *LastWritten) record(key unobserved.Key, s summary) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.objects == nil {
		l.objects = map[unobserved.Key]*lastWrite{}
	}
	// The same summary again (each reconcile of the source records what it finds as wanted)
	// keeps what was matched: the spec hash is the one the match was found against.
	if r, ok := l.objects[key]; ok && r.summary.equal(s) {
		return
	}
	l.objects[key] = &lastWrite{summary: s}
}

func (l *LastWritten) drop(key unobserved.Key) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.objects, key)
}

// takenOver forgets key's record when obj, which a source of this writer found controlled by
// someone else, is not controlled as recorded: someone took it over, and its being given back as
// last written must reconcile the source, to end the conflict. Another source of this writer
// controlling it, as recorded (a Linkerd Server that TrafficTargets share), leaves the record.
func (l *LastWritten) takenOver(key unobserved.Key, obj client.Object) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.objects[key]; ok && !metav1.IsControlledBy(obj, &metav1.ObjectMeta{UID: r.owner}) {
		delete(l.objects, key)
	}
}

// leftAsRecorded says whether obj is still as Sync last left it, so that reconciling its source
// again would find nothing to do.
func (l *LastWritten) leftAsRecorded(key unobserved.Key, obj client.Object) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	r, ok := l.objects[key]
	var matchedBefore bool
	if ok {
		// Generation 0: a kind whose generation the API server does not keep.
		matchedBefore = obj.GetGeneration() != 0 && obj.GetGeneration() == r.matchedGeneration && obj.GetUID() == r.matchedUID
	}
	l.mu.Unlock()
	if !ok {
		return false
	}
	if !r.metadataMatches(obj) {
		return false
	}
	if matchedBefore {
		return true
	}
	spec, err := specHash(obj)
	if err != nil || spec != r.spec {
		return false
	}
	l.mu.Lock()
	if l.objects[key] == r { // not recorded anew meanwhile
		r.matchedUID, r.matchedGeneration = obj.GetUID(), obj.GetGeneration()
	}
	l.mu.Unlock()
	return true
}

func isSubset(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// conflictOf is the conflict of wanting an object of kind gvk that live is, unless source controls
// live (nil then).
func conflictOf(gvk schema.GroupVersionKind, live, source client.Object) *Conflict {
	if metav1.IsControlledBy(live, source) {
		return nil
	}
	c := &Conflict{Kind: gvk.Kind, Name: live.GetName()}
	if ref := metav1.GetControllerOf(live); ref != nil {
		c.OwnerKind, c.OwnerName = ref.Kind, ref.Name
	}
	return c
}

// sameObject says whether a and b (nil: no object) are one object: both none, or the same UID.
func sameObject(a, b client.Object) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.GetUID() == b.GetUID()
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
