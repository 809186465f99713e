package controllers_test

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// fakeBackendName is the spec.backend value of the fake backend. The SMIOperator CRD's enum
// lists the built-in backends; the test adds this one to the CRD it installs, as a real new
// backend adds its name to the API.
const fakeBackendName v1alpha1.Backend = "fake"

// TestSwitchRunsARegisteredBackend: a backend that exists only in this test, registered through
// ResourceOptions.MoreBackends, is selected by the SMIOperator, programs every SMI object and
// Namespace (with the models the reconcilers build), is reported active, follows an edit of a
// split, and is swapped to from the xDS backend (which drains, then stops) and back to it (the
// fake instance retired, stopped and cleaned up after), with nothing of it outside this file
// but the registration.
func TestSwitchRunsARegisteredBackend(t *testing.T) {
	g := NewWithT(t)
	fake := &fakeBackend{}
	run := runOperator(t, g, func(ctrl.Manager) backends.Backend { return fake })
	c, ctx, split := run.c, run.ctx, run.split
	const operatorNS, ns = runOperatorNS, runShopNS

	port := freePort(g)
	op := &v1alpha1.SMIOperator{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
		Spec: v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{
			Port: port, InsecurePlaintext: true, SwapGracePeriod: &metav1.Duration{Duration: 2 * time.Second},
		}},
	}
	g.Expect(c.Create(ctx, op)).To(Succeed())
	active := func() v1alpha1.Backend {
		got := &v1alpha1.SMIOperator{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(op), got)).To(Succeed())
		if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) {
			return ""
		}
		return got.Status.ActiveBackend
	}
	xdsListens := func() bool {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))), time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	}
	programmed := func() metav1.ConditionStatus {
		got := &hub.TrafficSplit{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(split), got)).To(Succeed())
		if cond := meta.FindStatusCondition(got.Status.Conditions, smi.ConditionProgrammed); cond != nil && cond.ObservedGeneration == got.Generation {
			return cond.Status
		}
		return ""
	}
	g.Eventually(active, 30*time.Second).Should(Equal(v1alpha1.BackendXDS))
	g.Expect(xdsListens()).To(BeTrue())
	g.Expect(fake.started()).To(BeZero(), "the fake backend started before it was asked for")

	// xds → fake: the fake programs the split with its weights and every Namespace, is reported
	// active, and the xDS server drains, then stops.
	setBackend(ctx, g, c, op, fakeBackendName)
	g.Eventually(active, 30*time.Second).Should(Equal(fakeBackendName))
	g.Expect(fake.started()).To(Equal(1))
	current := fake.current()
	g.Eventually(current.splitWeights).WithArguments(types.NamespacedName{Namespace: ns, Name: "web"}).Should(Equal(map[string]int{"web-v1": 90, "web-v2": 10}))
	g.Expect(current.namespaces()).To(ContainElements(ns, operatorNS, "default"))
	g.Eventually(programmed).Should(Equal(metav1.ConditionTrue))
	g.Eventually(xdsListens, 30*time.Second).Should(BeFalse(), "the xDS server still listens after its grace period")

	// An edit reaches the fake backend's instance.
	g.Eventually(func() error {
		got := &hub.TrafficSplit{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(split), got); err != nil {
			return err
		}
		got.Spec.Backends[0].Weight, got.Spec.Backends[1].Weight = 10, 90
		return c.Update(ctx, got)
	}).Should(Succeed())
	g.Eventually(current.splitWeights).WithArguments(types.NamespacedName{Namespace: ns, Name: "web"}).Should(Equal(map[string]int{"web-v1": 10, "web-v2": 90}))

	// fake → xds: a new xDS server is active; the fake instance is retired, then stopped, and
	// its backend cleans up.
	setBackend(ctx, g, c, op, v1alpha1.BackendXDS)
	g.Eventually(active, 30*time.Second).Should(Equal(v1alpha1.BackendXDS))
	g.Expect(xdsListens()).To(BeTrue())
	g.Eventually(current.lifecycle).Should(Equal([]string{"activated", "retired", "stopped"}))
	g.Eventually(fake.cleanups).Should(BeNumerically(">=", 1))
	g.Expect(fake.started()).To(Equal(1))
	g.Eventually(programmed).Should(Equal(metav1.ConditionTrue))
}

// allowBackendInCRD adds name to every enum of backend names in the installed SMIOperator CRD.
func allowBackendInCRD(ctx context.Context, g Gomega, c client.Client, name v1alpha1.Backend) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "smioperators.smi-operator.io"}, crd)).To(Succeed())
	added := 0
	var walk func(*apiextensionsv1.JSONSchemaProps)
	walk = func(s *apiextensionsv1.JSONSchemaProps) {
		if slices.ContainsFunc(s.Enum, func(v apiextensionsv1.JSON) bool { return string(v.Raw) == `"`+string(v1alpha1.BackendXDS)+`"` }) {
			raw, _ := json.Marshal(name)
			s.Enum = append(s.Enum, apiextensionsv1.JSON{Raw: raw})
			added++
		}
		for k, p := range s.Properties {
			walk(&p)
			s.Properties[k] = p
		}
	}
	for i := range crd.Spec.Versions {
		walk(crd.Spec.Versions[i].Schema.OpenAPIV3Schema)
	}
	g.Expect(added).To(BeNumerically(">=", 3), "spec.backend, status.activeBackend, status.draining.backend")
	g.Expect(c.Update(ctx, crd)).To(Succeed())
	// The API server takes the new schema at once, but its discovery and validation caches may
	// lag: wait until an object with the new value is accepted (dry run).
	g.Eventually(func() error {
		return c.Create(ctx, &v1alpha1.SMIOperator{
			ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName},
			Spec:       v1alpha1.SMIOperatorSpec{Backend: name},
		}, client.DryRunAll)
	}).Should(Succeed())
}

func setBackend(ctx context.Context, g Gomega, c client.Client, op *v1alpha1.SMIOperator, backend v1alpha1.Backend) {
	g.Eventually(func() error {
		got := &v1alpha1.SMIOperator{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(op), got); err != nil {
			return err
		}
		got.Spec.Backend = backend
		return c.Update(ctx, got)
	}).Should(Succeed())
}

func freePort(g Gomega) int32 {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer lis.Close()
	return int32(lis.Addr().(*net.TCPAddr).Port)
}

// fakeBackend is a backend that programs no mesh: its instances record what the Switch and the
// reconcilers had them do.
type fakeBackend struct {
	mu        sync.Mutex
	instances []*fakeInstance
	cleaned   int
}

func (*fakeBackend) Name() v1alpha1.Backend { return fakeBackendName }

func (b *fakeBackend) Start(_ context.Context, _ backends.Env, _ v1alpha1.SMIOperatorSpec, settings mesh.Settings, _ func()) (backends.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := &fakeInstance{settings: settings, splits: map[types.NamespacedName]map[string]int{}, ns: map[string]bool{}}
	b.instances = append(b.instances, i)
	return i, nil
}

func (b *fakeBackend) Clean(context.Context, backends.Env) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.instances) > 0 {
		b.cleaned++
	}
	return nil
}

func (b *fakeBackend) started() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.instances)
}

func (b *fakeBackend) current() *fakeInstance {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.instances[len(b.instances)-1]
}

func (b *fakeBackend) cleanups() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cleaned
}

type fakeInstance struct {
	settings mesh.Settings

	mu     sync.Mutex
	splits map[types.NamespacedName]map[string]int // the weights of each split's model
	ns     map[string]bool
	events []string
}

func (i *fakeInstance) Splits() smiobject.Backend[*hub.TrafficSplit] { return fakeSplits{i} }
func (i *fakeInstance) Targets() smiobject.Backend[*hub.TrafficTarget] {
	return programsNothing[*hub.TrafficTarget]{}
}
func (i *fakeInstance) Policies() smiobject.Backend[*policyv1alpha1.TrafficPolicy] {
	return programsNothing[*policyv1alpha1.TrafficPolicy]{}
}
func (i *fakeInstance) Namespaces() namespace.Sink { return fakeNamespaces{i} }
func (i *fakeInstance) Services() service.Sink     { return nil }
func (i *fakeInstance) Fits(_ v1alpha1.SMIOperatorSpec, settings mesh.Settings) bool {
	return i.settings == settings
}
func (i *fakeInstance) Activate() { i.record("activated") }
func (i *fakeInstance) Retire(v1alpha1.SMIOperatorSpec) time.Time {
	i.record("retired")
	return time.Time{}
}
func (i *fakeInstance) Failed() bool { return false }
func (i *fakeInstance) Stop()        { i.record("stopped") }

func (i *fakeInstance) record(event string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	// Activate is called on every MoveToward of an active instance: record it once.
	if len(i.events) == 0 || i.events[len(i.events)-1] != event {
		i.events = append(i.events, event)
	}
}

func (i *fakeInstance) lifecycle() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.events)
}

func (i *fakeInstance) splitWeights(key types.NamespacedName) map[string]int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.splits[key]
}

func (i *fakeInstance) namespaces() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []string
	for ns := range i.ns {
		out = append(out, ns)
	}
	return out
}

type fakeSplits struct{ *fakeInstance }

func (f fakeSplits) Program(_ context.Context, split *hub.TrafficSplit, models *mesh.Models) ([]mesh.Diagnostic, error) {
	model, _ := models.BuiltWith(f.settings)
	weights := map[string]int{}
	for _, s := range model.Splits {
		for _, b := range s.Backends {
			weights[b.Name] = b.Weight
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.splits[types.NamespacedName{Namespace: split.Namespace, Name: split.Name}] = weights
	return nil, nil
}

func (f fakeSplits) Forget(_ context.Context, ref mesh.ObjectRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.splits, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name})
	return nil
}

// programsNothing is a sink of kind T that programs nothing and reports nothing.
type programsNothing[T hub.Object] struct{}

func (programsNothing[T]) Program(context.Context, T, *mesh.Models) ([]mesh.Diagnostic, error) {
	return nil, nil
}
func (programsNothing[T]) Forget(context.Context, mesh.ObjectRef) error { return nil }

type fakeNamespaces struct{ *fakeInstance }

func (f fakeNamespaces) SetNamespace(_ context.Context, ns *corev1.Namespace) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ns[ns.Name] = true
	return nil
}

func (f fakeNamespaces) DeleteNamespace(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ns, name)
	return nil
}
