package owned

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	networkingapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/unobserved"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// controlPlane (with Istio's CRDs) is started by the first test that needs it, so the package's
// unit tests run without one, and stopped by TestMain.
var controlPlane testenv.Lazy

func TestMain(m *testing.M) { controlPlane.Main(m) }

// cluster is what the tests against the real API server share: a client, whose write requests
// writes counts, and a namespace of the test's own.
type cluster struct {
	client    client.Client
	scheme    *runtime.Scheme
	writes    *testenv.WriteCounter
	namespace string
}

func newCluster(t *testing.T) cluster {
	t.Helper()
	env := controlPlane.Get(t)
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme, hub.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	writes := &testenv.WriteCounter{}
	config := rest.CopyConfig(env.Config)
	config.Wrap(writes.Wrap)
	c, err := client.New(config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "owned-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return cluster{client: c, scheme: scheme, writes: writes, namespace: ns.Name}
}

// writer writes through the API server's client; cache stands for the manager's cache.
func (c cluster) writer(cache client.Reader) Writer {
	return Writer{Client: c.client, Reader: cache, APIReader: c.client, Scheme: c.scheme, Unobserved: &unobserved.Writes{}}
}

// cacheShowing is a cache that has seen objs and nothing since: what a manager's cache is for a
// moment after each change.
func (c cluster) cacheShowing(objs ...client.Object) client.Reader {
	return fake.NewClientBuilder().WithScheme(c.scheme).WithObjects(objs...).Build()
}

// split is the source of the tests' objects; only its identity matters, so it is not stored.
func (c cluster) split() *hub.TrafficSplit {
	return &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: "web", UID: "split-uid"}}
}

// routes is the kind of routes a test VirtualService has.
type routes int

const (
	httpRoutes routes = iota
	tcpRoutes
)

// virtualService is a VirtualService "web" to the web Service, with routes of kind r.
func (c cluster) virtualService(labels map[string]string, r routes) *networkingv1.VirtualService {
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: "web", Labels: labels}}
	vs.Spec.Hosts = []string{"web"}
	to := &networkingapi.Destination{Host: "web"}
	switch r {
	case httpRoutes:
		vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: to}}}}
	case tcpRoutes:
		vs.Spec.Tcp = []*networkingapi.TCPRoute{{Route: []*networkingapi.RouteDestination{{Destination: to}}}}
	}
	return vs
}

// wanted is the split's VirtualService as its translator makes it.
func (c cluster) wanted(r routes) *networkingv1.VirtualService {
	return c.virtualService(smi.SourceLabels(smi.TrafficSplitKind, "web"), r)
}

// sync syncs, with w, the split's VirtualService wanted with routes of kind r.
func (c cluster) sync(t *testing.T, w Writer, r routes) Result {
	t.Helper()
	res, err := w.Sync(context.Background(), c.split(), []client.Object{c.wanted(r)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// createTheirs creates, directly through the API server, a VirtualService "web" that someone else
// made (no controller: nothing an apply would trip over), and returns it as the server stored it.
func (c cluster) createTheirs(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	vs := c.virtualService(map[string]string{"app": "web"}, tcpRoutes)
	if err := c.client.Create(context.Background(), vs, client.FieldOwner("someone-else")); err != nil {
		t.Fatal(err)
	}
	return c.stored(t)
}

// stored is the VirtualService "web" as the API server has it, all of it (managedFields too).
func (c cluster) stored(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("VirtualService"))
	if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: c.namespace, Name: "web"}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

// storedTyped is the VirtualService "web" as the API server has it.
func (c cluster) storedTyped(t *testing.T) *networkingv1.VirtualService {
	t.Helper()
	vs := &networkingv1.VirtualService{}
	if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: c.namespace, Name: "web"}, vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func (c cluster) delete(t *testing.T) {
	t.Helper()
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: "web"}}
	if err := c.client.Delete(context.Background(), vs); err != nil {
		t.Fatal(err)
	}
}

// checkRoutes fails the test unless the stored VirtualService is the split's, with routes of kind r only.
func (c cluster) checkRoutes(t *testing.T, r routes) {
	t.Helper()
	vs := c.storedTyped(t)
	if !metav1.IsControlledBy(vs, c.split()) {
		t.Errorf("the VirtualService is controlled by %v, not by the split", metav1.GetControllerOf(vs))
	}
	gotHTTP, gotTCP := len(vs.Spec.Http) > 0, len(vs.Spec.Tcp) > 0
	if gotHTTP != (r == httpRoutes) || gotTCP != (r == tcpRoutes) {
		t.Errorf("the VirtualService has HTTP routes: %v, TCP routes: %v; want only the %s ones",
			gotHTTP, gotTCP, map[routes]string{httpRoutes: "HTTP", tcpRoutes: "TCP"}[r])
	}
}

func checkConflicts(t *testing.T, res Result, want ...Conflict) {
	t.Helper()
	if !slices.Equal(res.Conflicts, want) {
		t.Errorf("conflicts %v, want %v", res.Conflicts, want)
	}
}

// TestSyncLeavesAnObjectCreatedSinceTheCacheLooked: someone creates an object with a wanted name
// just before the operator writes, too late for the operator's cache to show it. The operator must
// leave it exactly as it is and report the conflict; once it is gone, the name is the source's.
func TestSyncLeavesAnObjectCreatedSinceTheCacheLooked(t *testing.T) {
	c := newCluster(t)
	theirs := c.createTheirs(t)
	w := c.writer(c.cacheShowing())

	res := c.sync(t, w, httpRoutes)
	checkConflicts(t, res, Conflict{Kind: "VirtualService", Name: "web"})
	if diff := cmp.Diff(theirs.Object, c.stored(t).Object); diff != "" {
		t.Fatalf("the object someone else created was changed (-before +after):\n%s", diff)
	}

	c.delete(t)
	// The cache shows no object, as it did when the conflict was found: the write that was not
	// made must not pass for one the cache has not caught up with yet.
	if res := c.sync(t, w, httpRoutes); res.Writes != 1 {
		t.Errorf("once the other object is gone, Sync wrote %d objects, want 1", res.Writes)
	}
	c.checkRoutes(t, httpRoutes)
}

// TestSyncLeavesAnObjectThatReplacedTheSourcesOwn: the cache shows the source's object, but on the
// API server someone else's object has replaced it since (deleted, then created with the same
// name). The apply meant for the source's object must not take the new one over.
func TestSyncLeavesAnObjectThatReplacedTheSourcesOwn(t *testing.T) {
	c := newCluster(t)
	c.sync(t, c.writer(c.client), httpRoutes)
	cache := c.cacheShowing(c.storedTyped(t))
	c.delete(t)
	theirs := c.createTheirs(t)

	// Other routes than the cache shows: the operator must write.
	res := c.sync(t, c.writer(cache), tcpRoutes)
	checkConflicts(t, res, Conflict{Kind: "VirtualService", Name: "web"})
	if diff := cmp.Diff(theirs.Object, c.stored(t).Object); diff != "" {
		t.Errorf("the object that replaced the source's was changed (-before +after):\n%s", diff)
	}
}

// TestSyncRecreatesItsObjectDeletedSinceTheCacheLooked: the cache still shows the source's object,
// which was deleted since; the API server refuses the apply meant for it, and Sync creates it again.
func TestSyncRecreatesItsObjectDeletedSinceTheCacheLooked(t *testing.T) {
	c := newCluster(t)
	c.sync(t, c.writer(c.client), httpRoutes)
	cache := c.cacheShowing(c.storedTyped(t))
	c.delete(t)

	res := c.sync(t, c.writer(cache), tcpRoutes)
	checkConflicts(t, res)
	if res.Writes != 1 {
		t.Errorf("Sync wrote %d objects, want 1", res.Writes)
	}
	c.checkRoutes(t, tcpRoutes)
}

// TestSyncUpdatesItsObjectTheCacheHasNotSeen: the source's own object, created by an earlier Sync
// the cache has not caught up with, is the source's on the API server: Sync updates it.
func TestSyncUpdatesItsObjectTheCacheHasNotSeen(t *testing.T) {
	c := newCluster(t)
	cache := c.cacheShowing()
	c.sync(t, c.writer(cache), httpRoutes)

	res := c.sync(t, c.writer(cache), tcpRoutes)
	checkConflicts(t, res)
	if res.Writes != 1 {
		t.Errorf("Sync wrote %d objects, want 1", res.Writes)
	}
	c.checkRoutes(t, tcpRoutes)
}

// TestSyncRemovesWhatItsCreateSet: the fields of a Create belong to another entry of the field
// manager than its applies', which an apply alone cannot remove; a created VirtualService whose
// HTTP routes give way to TCP routes must lose its HTTP routes all the same, after which syncing
// it again sends nothing.
func TestSyncRemovesWhatItsCreateSet(t *testing.T) {
	c := newCluster(t)
	w := c.writer(c.client) // the API server itself: a cache that is never behind
	c.sync(t, w, httpRoutes)

	c.sync(t, w, tcpRoutes)
	c.checkRoutes(t, tcpRoutes)
	before := c.writes.Total()
	if res := c.sync(t, w, tcpRoutes); res.Writes != 0 || c.writes.Total() != before {
		t.Errorf("syncing an object that is as wanted wrote %d objects in %d requests, want none", res.Writes, c.writes.Total()-before)
	}
}

// TestSyncDoesNotRepeatACreateTheCacheHasNotSeen: a Sync that runs again before the cache shows
// what the previous one created sends nothing.
func TestSyncDoesNotRepeatACreateTheCacheHasNotSeen(t *testing.T) {
	c := newCluster(t)
	w := c.writer(c.cacheShowing())
	if res := c.sync(t, w, httpRoutes); res.Writes != 1 {
		t.Fatalf("Sync wrote %d objects, want 1", res.Writes)
	}
	before := c.writes.Total()
	if res := c.sync(t, w, httpRoutes); res.Writes != 0 || c.writes.Total() != before {
		t.Errorf("the second Sync wrote %d objects in %d requests, want none", res.Writes, c.writes.Total()-before)
	}
}

// TestChangesToCorrectSkipsOwnWrites: in a real informer on the API server, the update events
// of the writer's own writes, and of changes to what Sync does not compare, are dropped (each
// would reconcile the source once more, to find nothing to do); someone else's change of what Sync
// wrote passes, and so does every update after the object was deleted and forgotten.
func TestChangesToCorrectSkipsOwnWrites(t *testing.T) {
	c := newCluster(t)
	env := controlPlane.Get(t)
	informers, err := crcache.New(env.Config, crcache.Options{Scheme: c.scheme, DefaultNamespaces: map[string]crcache.Config{c.namespace: {}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	informer, err := informers.GetInformer(ctx, &networkingv1.VirtualService{})
	if err != nil {
		t.Fatal(err)
	}
	w := c.writer(c.client) // reads the API server itself: Sync never sees a stale object
	w.LastWritten = &LastWritten{}
	changes := w.ChangesToCorrect()
	type verdict struct {
		update, passed bool
	}
	events := make(chan verdict, 10)
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, new any) {
			events <- verdict{update: true, passed: changes.Update(event.UpdateEvent{ObjectOld: old.(client.Object), ObjectNew: new.(client.Object)})}
		},
		DeleteFunc: func(obj any) {
			o, ok := obj.(client.Object)
			events <- verdict{passed: ok && changes.Delete(event.DeleteEvent{Object: o})}
		},
	}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("the informer did not sync")
	}
	next := func(step string, want verdict) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Errorf("%s: event %+v, want %+v", step, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no event", step)
		}
	}
	edit := func(patch string) {
		t.Helper()
		vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: "web"}}
		if err := c.client.Patch(ctx, vs, client.RawPatch(types.MergePatchType, []byte(patch)), client.FieldOwner("someone-else")); err != nil {
			t.Fatal(err)
		}
	}

	c.sync(t, w, httpRoutes) // a Create: no update event
	// Then an apply that must hand the Create's fields over (handOverCreatedFields): the first apply
	// leaves the HTTP routes, and so does the patch of the managed fields; they pass, the object not
	// being as wanted. The second apply is the writer's own.
	c.sync(t, w, tcpRoutes)
	next("the apply that left the created fields", verdict{update: true, passed: true})
	next("the hand-over of the created fields", verdict{update: true, passed: true})
	next("the writer's own apply", verdict{update: true, passed: false})
	c.sync(t, w, httpRoutes)
	next("the writer's own apply", verdict{update: true, passed: false})
	edit(`{"metadata":{"annotations":{"note":"by hand"}}}`)
	next("someone's annotation", verdict{update: true, passed: false})
	edit(`{"spec":{"hosts":["web","other"]}}`)
	next("someone's change of the spec", verdict{update: true, passed: true})
	if res := c.sync(t, w, httpRoutes); res.Writes != 1 {
		t.Fatalf("Sync correcting the spec wrote %d objects, want 1", res.Writes)
	}
	next("the writer's correction", verdict{update: true, passed: false})
	edit(`{"metadata":{"labels":{"` + smi.LabelSourceName + `":"other"}}}`)
	next("someone's change of a label the writer set", verdict{update: true, passed: true})
	c.sync(t, w, httpRoutes)
	next("the writer's correction", verdict{update: true, passed: false})
	// Another source of the writer wanting it (as TrafficTargets share a Linkerd Server) finds a
	// conflict, and leaves the record of the source that controls it.
	other := c.split()
	other.Name, other.UID = "other", "other-uid"
	if res, err := w.Sync(ctx, other, []client.Object{c.wanted(httpRoutes)}, nil); err != nil || len(res.Conflicts) != 1 {
		t.Fatalf("Sync of another source wanting it: %+v, %v; want a conflict", res, err)
	}
	edit(`{"metadata":{"annotations":{"note":"again"}}}`)
	next("someone's annotation after another source's conflict", verdict{update: true, passed: false})
	// Someone else takes it over: a conflict, which ends when it is given back as it was.
	owner := func(apiVersion, kind, name, uid string) string {
		return `{"metadata":{"ownerReferences":[{"apiVersion":"` + apiVersion + `","kind":"` + kind + `","name":"` + name +
			`","uid":"` + uid + `","controller":true,"blockOwnerDeletion":true}]}}`
	}
	edit(owner("v1", "ConfigMap", "theirs", "their-uid"))
	next("someone's taking it over", verdict{update: true, passed: true})
	if res := c.sync(t, w, httpRoutes); len(res.Conflicts) != 1 || res.Writes != 0 {
		t.Fatalf("Sync of an object someone else controls: %+v, want a conflict and no write", res)
	}
	edit(owner(smi.SplitHub.String(), smi.TrafficSplitKind, "web", "split-uid"))
	next("its giving back, as the writer last wrote it", verdict{update: true, passed: true})
	// Synced again, it is as wanted: the writer records it without writing.
	if res := c.sync(t, w, httpRoutes); res.Writes != 0 {
		t.Fatalf("Sync of an object as wanted wrote %d objects", res.Writes)
	}
	last := c.storedTyped(t)
	unchanged := event.UpdateEvent{ObjectOld: last, ObjectNew: last}
	if changes.Update(unchanged) {
		t.Fatal("before the deletion, an update showing the object as the writer left it passed")
	}
	c.delete(t)
	next("the deletion", verdict{passed: true})
	if !changes.Update(unchanged) {
		t.Error("after the deletion, an update showing what the writer last left was dropped: the writer forgot nothing")
	}
	select {
	case e := <-events:
		t.Errorf("an event nothing made: %+v", e)
	default:
	}
}
