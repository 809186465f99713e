package xdse2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// extraSplits is how many TrafficSplits backendSwap has besides web.
const extraSplits = 500

// swapGracePeriod is how long the xDS server keeps serving after the swap to istio; long enough
// for many RPCs, short enough for a test.
const swapGracePeriod = 15 * time.Second

// swapSpecs are the specs of the swap operator, which share its SMIOperator (the cluster's only
// one: each spec deletes it when it ends) and swapNamespace, in this order: backendSwap creates the
// namespace, the others take it as they find it.
func swapSpecs() {
	It("swaps istio → xds → istio with nothing lost, and deleting the SMIOperator removes what was generated", backendSwap)
	It("says why a backend cannot run, and follows the edit that fixes it", backendUnavailable)
	It("swapping back while draining replaces the draining xDS server", swapBackWhileDraining)
	It("each backend programs with its own settings", eachBackendProgramsWithItsOwnSettings)
	It("RPCs go through restarts of the xDS server and of the operator", rpcsThroughXDSServerRestarts)
	It("the SMIOperator counts objects proxies reject", smiOperatorCountsRejectedObjects)
}

// backendSwap edits the SMIOperator's backend istio → xds → istio with a TrafficSplit and a
// TrafficTarget present, then deletes it:
//   - each step leaves exactly the generated objects expected;
//   - istio → xds: no generated Istio object is deleted before the xDS server serves the split's
//     routes and the target's rule (an admission webhook holds the first deletion and asks the xDS
//     server);
//   - xds → istio: every Istio object exists once the xDS server stops taking updates, and a
//     proxyless client calling continuously through it sees no failed RPC until the grace period
//     ends; then the server stops;
//   - deleting the SMIOperator deletes the generated objects and leaves the SMI objects.
func backendSwap() {
	o.startSwapOperator()
	ctx := context.Background()
	ns := swapNamespace
	o.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	o.service(ns, "web", o.backend(ns, "web", 11))
	o.service(ns, "web-v1", o.backend(ns, "web-v1", 12))
	o.service(ns, "web-v2", o.backend(ns, "web-v2", 13))
	// vault's xDS-enabled server starts once an xDS server runs; its Service exists from the start.
	o.service(ns, "vault", netns.Addr(14).String())
	split := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "web-v1", Weight: 100}, {Service: "web-v2", Weight: 0},
		}},
	}
	o.create(split)
	// More splits, so that retiring Istio before the xDS server has all of them would show: the
	// check below asks for every one in a single request.
	routeNames := []string{"web." + ns + ".svc.cluster.local:80"}
	for i := range extraSplits {
		name := fmt.Sprintf("shop-%d", i)
		o.service(ns, name)
		o.create(&hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: name, Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: "web-v1", Weight: 100}, {Service: "web-v2", Weight: 0},
			}},
		})
		routeNames = append(routeNames, name+"."+ns+".svc.cluster.local:80")
	}
	target := o.tellersOpenTheVault(ns)
	o.create(workload(ns, "vault")) // Istio's policy selects the destination's workloads

	// 1. istio.
	op := o.createSMIOperator(v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio, XDS: v1alpha1.XDSSpec{
		Port: swapXDSPort, SwapGracePeriod: &metav1.Duration{Duration: swapGracePeriod},
	}})
	o.waitOperator("istio programs everything", func(op *v1alpha1.SMIOperator) error {
		return settled(op, v1alpha1.BackendIstio)
	})
	wantIstio := []string{
		"AuthorizationPolicy/smi-default-deny", // the namespace's enforcing baseline
		"AuthorizationPolicy/" + target.Name + "-deployment-vault",
		"PeerAuthentication/" + target.Name + "-deployment-vault",
		"VirtualService/" + split.Name,
	}
	for i := range extraSplits {
		wantIstio = append(wantIstio, fmt.Sprintf("VirtualService/shop-%d", i))
	}
	slices.Sort(wantIstio) // as istioObjects lists them
	o.waitIstioObjects(ns, wantIstio)
	o.waitProgrammed(split)

	// 2. istio → xds. An admission webhook sees every deletion of a generated Istio object; at
	// the first one, before letting it through, it asks the xDS server for the split's routes and
	// the rule of the target's destination.
	teller := ca.SPIFFEID("cluster.local", ns, "teller")
	atFirstDelete := o.checkAtFirstIstioDelete(ns, func(ctx context.Context) error {
		if err := servesContaining(ctx, ns, "teller", resourcev3.RouteType, routeNames, "outbound|80||web-v1."+ns); err != nil {
			return fmt.Errorf("the splits: %w", err)
		}
		listener := "grpc/server?xds.resource.listening_address=" + netns.HostPort(14, backendPort)
		if err := servesContaining(ctx, ns, "vault", resourcev3.ListenerType, []string{listener}, teller); err != nil {
			return fmt.Errorf("the target: %w", err)
		}
		return nil
	})
	o.setBackend(v1alpha1.BackendXDS)
	o.waitOperator("xds programs everything", func(op *v1alpha1.SMIOperator) error {
		return settled(op, v1alpha1.BackendXDS)
	})
	o.waitIstioObjects(ns, nil)
	var atDelete error
	Eventually(atFirstDelete).Within(10*time.Second).Should(Receive(&atDelete), "the webhook saw no deletion of a generated Istio object")
	Expect(atDelete).NotTo(HaveOccurred(), "when the first generated Istio object was deleted, the xDS server did not serve the SMI objects yet")
	o.xdsBackend(ns, "vault", 14)
	web := dial(ns, "web", o.clientBootstrap(ns, "teller"))
	vault := dial(ns, "vault", o.clientBootstrap(ns, "teller"))
	web.waitFor(ctx, grpcxds.FromBackend("web-v1"))
	vault.waitFor(ctx, grpcxds.FromBackend("vault"))
	o.waitProgrammed(split)
	// EndpointSlices, watched only since an xDS server first ran, are followed.
	moved := o.backend(ns, "web-v1-moved", 15)
	o.updateSlice(ns, "web-v1", func(s *discoveryv1.EndpointSlice) { *s = *endpointSlice(ns, "web-v1", moved) })
	waitOnly(web, ctx, "web-v1-moved")

	// 3. xds → istio, calling through the xDS server all along.
	calls := startCalling(ctx, map[string]*grpcClient{"web-v1-moved": web, "vault": vault})
	swapped := time.Now()
	o.setBackend(v1alpha1.BackendIstio)
	var drainUntil time.Time
	o.waitOperator("istio active, xds draining", func(op *v1alpha1.SMIOperator) error {
		if err := settledBackend(op, v1alpha1.BackendIstio); err != nil {
			return err
		}
		if op.Status.Draining == nil || op.Status.Draining.Backend != v1alpha1.BackendXDS {
			return fmt.Errorf("draining = %+v, want xds", op.Status.Draining)
		}
		drainUntil = op.Status.Draining.Until.Time
		return nil
	})
	// The xDS server stopped taking updates: every Istio object must exist already.
	Expect(o.istioObjects(ns)).To(Equal(wantIstio), "the generated Istio objects when the xDS server started draining")
	Expect(drainUntil.Sub(swapped)).To(SatisfyAll(BeNumerically(">=", swapGracePeriod-time.Second), BeNumerically("<=", swapGracePeriod+30*time.Second)),
		"draining until %s, after the swap; want the grace period, %s", drainUntil, swapGracePeriod)
	// Connected clients would keep their last configuration even with the server gone: a new
	// request shows the server itself still answers, with its last configuration.
	time.Sleep(time.Until(drainUntil.Add(-3 * time.Second)))
	askCtx, cancelAsk := context.WithTimeout(ctx, 2*time.Second)
	err := servesContaining(askCtx, ns, "teller", resourcev3.RouteType, routeNames, "outbound|80||web-v1."+ns)
	cancelAsk()
	Expect(err).NotTo(HaveOccurred(), "3 s before the grace period ends, the draining xDS server does not serve the splits")
	o.waitOperator("the grace period ended", func(op *v1alpha1.SMIOperator) error {
		if op.Status.Draining != nil {
			return fmt.Errorf("still draining until %s", op.Status.Draining.Until)
		}
		return settled(op, v1alpha1.BackendIstio)
	})
	ok, failed := calls.stop()
	Expect(failed).To(BeEmpty(), "%d of %d RPCs failed between the swap and the end of the grace period", len(failed), ok+len(failed))
	Expect(ok).To(BeNumerically(">=", 100), "RPCs made during the swap and the grace period")
	GinkgoWriter.Printf("%d RPCs through the xDS server between the swap to istio and the end of the grace period, none failed\n", ok)
	Expect(time.Now()).NotTo(BeTemporally("<", drainUntil), "draining ended before it should have")
	waitClosed(netns.HostPort(1, swapXDSPort))
	o.waitIstioObjects(ns, wantIstio)

	// Each step was announced on the SMIOperator.
	o.waitEventReasons(op, v1alpha1.ReasonSwapping, v1alpha1.ReasonDraining, v1alpha1.ReasonSettled, v1alpha1.ReasonBackendReady)

	// 4. Deleting the SMIOperator stops programming and removes what was generated.
	Expect(o.client.Delete(ctx, op)).To(Succeed())
	o.waitIstioObjects(ns, nil)
	o.waitCondition(split, smi.ConditionProgrammed, metav1.ConditionFalse, backends.ReasonNoBackend)
	for _, obj := range []client.Object{&hub.TrafficSplit{}, &hub.TrafficTarget{}} {
		key := client.ObjectKeyFromObject(split)
		if _, ok := obj.(*hub.TrafficTarget); ok {
			key = client.ObjectKeyFromObject(target)
		}
		Expect(o.client.Get(ctx, key, obj)).To(Succeed(), "the SMI object %s is gone with the SMIOperator", key)
	}
}

// waitEventReasons waits until Events about op (this one, not an earlier test's of the same
// name) carry every reason listed.
func (o *operator) waitEventReasons(op *v1alpha1.SMIOperator, reasons ...string) {
	GinkgoHelper()
	Eventually(func() error {
		list := &eventsv1.EventList{}
		Expect(o.client.List(context.Background(), list)).To(Succeed())
		seen := map[string]bool{}
		for _, ev := range list.Items {
			if ev.Regarding.Kind == "SMIOperator" && ev.Regarding.UID == op.UID {
				seen[ev.Reason] = true
			}
		}
		if missing := slices.DeleteFunc(slices.Clone(reasons), func(r string) bool { return seen[r] }); len(missing) > 0 {
			return fmt.Errorf("no Event about the SMIOperator with reason %v; seen %v", missing, seen)
		}
		return nil
	}).Within(30 * time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())
}

// workload is a Deployment running as ServiceAccount sa, so that TrafficTargets naming sa find
// a workload (Istio policies select workloads).
func workload(ns, sa string) client.Object {
	labels := map[string]string{"app": sa}
	d := &appsv1.Deployment{}
	d.Namespace, d.Name = ns, sa
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
	d.Spec.Template.Labels = labels
	d.Spec.Template.Spec.ServiceAccountName = sa
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "example.com/" + sa}}
	return d
}

// settled checks the SMIOperator reports backend active and ready, with nothing in progress.
func settled(op *v1alpha1.SMIOperator, backend v1alpha1.Backend) error {
	if err := settledBackend(op, backend); err != nil {
		return err
	}
	if c := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionProgressing); c == nil || c.Status != metav1.ConditionFalse {
		return fmt.Errorf("Progressing = %+v, want False", c)
	}
	return nil
}

// settledBackend checks the SMIOperator reports backend active and Ready for its generation.
func settledBackend(op *v1alpha1.SMIOperator, backend v1alpha1.Backend) error {
	ready := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionReady)
	if op.Status.ActiveBackend != backend || ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != op.Generation {
		return fmt.Errorf("active backend %q, Ready %+v; want %s ready at generation %d", op.Status.ActiveBackend, ready, backend, op.Generation)
	}
	return nil
}

// createSMIOperator creates the SMIOperator with spec, and deletes it when the test ends: it is
// the cluster's only one, and the next test needs it gone even if this one fails.
func (o *operator) createSMIOperator(spec v1alpha1.SMIOperatorSpec) *v1alpha1.SMIOperator {
	GinkgoHelper()
	op := &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}, Spec: spec}
	o.create(op)
	DeferCleanup(func() { _ = o.client.Delete(context.Background(), op) })
	return op
}

// mergePatch applies a JSON merge patch to obj.
func (o *operator) mergePatch(obj client.Object, patch string) {
	GinkgoHelper()
	Expect(o.client.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", []byte(patch)))).To(Succeed())
}

func (o *operator) setBackend(backend v1alpha1.Backend) {
	GinkgoHelper()
	o.mergePatch(&v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}},
		fmt.Sprintf(`{"spec":{"backend":%q}}`, backend))
}

// waitOperator waits until check accepts the SMIOperator, or fails after a minute.
func (o *operator) waitOperator(what string, check func(*v1alpha1.SMIOperator) error) {
	GinkgoHelper()
	Eventually(func() error {
		op := &v1alpha1.SMIOperator{}
		err := o.client.Get(context.Background(), client.ObjectKey{Name: v1alpha1.SingletonName}, op)
		if err == nil {
			err = check(op)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())
}

// istioObjects lists the generated Istio objects of a namespace as sorted "Kind/name".
func (o *operator) istioObjects(ns string) []string {
	GinkgoHelper()
	var out []string
	for _, list := range []client.ObjectList{
		&networkingv1.VirtualServiceList{}, &networkingv1.DestinationRuleList{},
		&securityv1.AuthorizationPolicyList{}, &securityv1.PeerAuthenticationList{},
	} {
		Expect(o.client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{smi.LabelManagedBy: smi.ManagedByValue})).To(Succeed())
		items, err := meta.ExtractList(list)
		Expect(err).NotTo(HaveOccurred())
		kind := strings.TrimSuffix(fmt.Sprintf("%T", list), "List")
		kind = kind[strings.LastIndex(kind, ".")+1:]
		for _, item := range items {
			out = append(out, kind+"/"+item.(client.Object).GetName())
		}
	}
	slices.Sort(out)
	return out
}

func (o *operator) waitIstioObjects(ns string, want []string) {
	GinkgoHelper()
	Eventually(func() error {
		if got := o.istioObjects(ns); !slices.Equal(got, want) {
			return fmt.Errorf("generated Istio objects in %s: %v, want %v", ns, got, want)
		}
		return nil
	}).Within(time.Minute).ProbeEvery(50 * time.Millisecond).Should(Succeed())
}

// checkAtFirstIstioDelete registers, for this test, an admission webhook on the DELETEs of
// generated Istio objects in ns: the first one runs check before it is let through (the deletion
// waits), and its outcome is delivered. Every deletion is allowed.
func (o *operator) checkAtFirstIstioDelete(ns string, check func(context.Context) error) <-chan error {
	GinkgoHelper()
	outcome := make(chan error, 1)
	var once sync.Once
	path := "/test-" + ns + "-istio-deletes"
	o.webhooks.Register(path, &webhook.Admission{Handler: admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		once.Do(func() {
			checkCtx, cancel := context.WithTimeout(ctx, 8*time.Second)
			defer cancel()
			outcome <- check(checkCtx)
		})
		return admission.Allowed("")
	})})
	url := fmt.Sprintf("https://%s%s", net.JoinHostPort(o.env.Webhook.LocalServingHost, strconv.Itoa(o.env.Webhook.LocalServingPort)), path)
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	config := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "test-" + ns + "-istio-deletes"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "istio-deletes.test.smi-operator.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: o.env.Webhook.LocalServingCAData},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			TimeoutSeconds:          ptr.To(int32(20)),
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{smi.LabelManagedBy: smi.ManagedByValue}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"networking.istio.io", "security.istio.io"}, APIVersions: []string{"*"},
					Resources: []string{"virtualservices", "destinationrules", "authorizationpolicies", "peerauthentications"},
				},
			}},
		}},
	}
	o.create(config)
	DeferCleanup(func() { _ = o.client.Delete(context.Background(), config) })
	return outcome
}

// servesContaining asks the swap operator's xDS server, as the proxyless client running as
// serviceAccount in ns, for resources in one request, and checks its first answer (the server's
// state at one moment) holds each of them with want in its JSON form. When the server has none of
// them it does not answer: ctx bounds the wait.
func servesContaining(ctx context.Context, ns, serviceAccount, typeURL string, names []string, want string) error {
	stream, err := askXDS(ctx, ns, serviceAccount, typeURL, names)
	if err != nil {
		return err
	}
	resp, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("asking for %d %s: %w", len(names), typeURL, err)
	}
	holding := 0
	for _, res := range resp.Resources {
		if js, err := protojson.Marshal(res); err == nil && strings.Contains(string(js), want) {
			holding++
		}
	}
	if holding != len(names) {
		return fmt.Errorf("%d of the %d %s asked for hold %q (%d served)", holding, len(names), typeURL, want, len(resp.Resources))
	}
	return nil
}

// askXDS opens an ADS stream to the swap operator's xDS server as the proxyless client running as
// serviceAccount in ns, and asks for resources; the stream lives as long as ctx.
func askXDS(ctx context.Context, ns, serviceAccount, typeURL string, names []string) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, error) {
	return askXDSOn(ctx, swapXDSPort, ns, serviceAccount, typeURL, names)
}

// xdsTokens holds a token for the xDS audience per "namespace/ServiceAccount", made once: askXDSOn
// runs in polling loops and in an admission webhook's handler, neither of which should ask the
// API server for one each time.
var xdsTokens sync.Map

// xdsToken is the token askXDSOn sends for ServiceAccount ns/serviceAccount (valid for an hour).
func xdsToken(ctx context.Context, ns, serviceAccount string) (string, error) {
	key := ns + "/" + serviceAccount
	if token, ok := xdsTokens.Load(key); ok {
		return token.(string), nil
	}
	token, err := testenv.ServiceAccountToken(ctx, o.env.Config, ns, serviceAccount, tokenAudience)
	if err != nil {
		return "", err
	}
	xdsTokens.Store(key, token)
	return token, nil
}

// askXDSOn is askXDS on the xDS server listening on port (over TLS, with the token ctx carries
// in its outgoing "authorization" metadata, else one of serviceAccount, which the node claims).
func askXDSOn(ctx context.Context, port uint16, ns, serviceAccount, typeURL string, names []string) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, error) {
	if md, _ := metadata.FromOutgoingContext(ctx); len(md.Get("authorization")) == 0 {
		token, err := xdsToken(ctx, ns, serviceAccount)
		if err != nil {
			return nil, err
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	conn, err := o.dialXDS(port)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { _ = conn.Close() })
	nodeMeta, err := structpb.NewStruct(map[string]any{
		server.MetadataProxy: server.ProxyGRPC, server.MetadataNamespace: ns, server.MetadataServiceAccount: serviceAccount,
	})
	if err != nil {
		return nil, err
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	return stream, stream.Send(&discoveryv3.DiscoveryRequest{
		Node: &corev3.Node{Id: ns + "/" + serviceAccount + "-check", Metadata: nodeMeta}, TypeUrl: typeURL, ResourceNames: names,
	})
}

// caller calls backends continuously and counts what succeeds and what fails.
type caller struct {
	cancel context.CancelFunc
	done   chan struct{}
	ok     int
	failed []error
}

// startCalling calls each client in turn, checking each reply comes from the backend it is keyed
// by, every 10 ms, until stop.
func startCalling(ctx context.Context, clients map[string]*grpcClient) *caller {
	return startCallingEvery(ctx, 10*time.Millisecond, clients, true)
}

// startCallingEvery calls each client in turn, pausing between rounds, until stop. With
// checkBackend, a reply must come from the backend the client is keyed by; without, any answer
// counts (the caller checks where calls land some other way).
func startCallingEvery(ctx context.Context, pause time.Duration, clients map[string]*grpcClient, checkBackend bool) *caller {
	ctx, cancel := context.WithCancel(ctx)
	c := &caller{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			for want, client := range clients {
				callCtx, cancelCall := context.WithTimeout(ctx, 5*time.Second)
				r, err := grpcxds.Call(callCtx, client.conn)
				cancelCall()
				switch {
				case ctx.Err() != nil:
					return
				case err == nil && checkBackend && r.Backend != want:
					err = fmt.Errorf("answered by %s, want %s", r.Backend, want)
				}
				if err != nil {
					c.failed = append(c.failed, fmt.Errorf("%s at %s: %w", want, time.Now().Format(time.StampMilli), err))
				} else {
					c.ok++
				}
			}
			time.Sleep(pause)
		}
	}()
	return c
}

func (c *caller) stop() (ok int, failed []error) {
	c.cancel()
	<-c.done
	return c.ok, c.failed
}

// waitClosed waits until nothing listens on addr any more.
func waitClosed(addr string) {
	GinkgoHelper()
	Eventually(func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		_ = conn.Close()
		return fmt.Errorf("the xDS server still listens on %s after the grace period", addr)
	}).Within(30 * time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())
}

// backendUnavailable: a backend that cannot run says why in the SMIOperator's status
// (Ready=False BackendUnavailable), and an edit that fixes it is followed at once; the xDS server
// then serves TLS with the certificate of the Secret the spec names, with one of the built-in CA
// once the Secret is dropped from the spec, and plain text only when the spec opts out of TLS.
func backendUnavailable() {
	o.startSwapOperator()
	ctx := context.Background()
	// The enforcing operator's xDS server holds this port on the same address.
	op := o.createSMIOperator(v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{Port: xdsPort}})
	unavailable := func(because string) func(*v1alpha1.SMIOperator) error {
		return func(op *v1alpha1.SMIOperator) error {
			ready := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.ReasonBackendUnavailable ||
				ready.ObservedGeneration != op.Generation || !strings.Contains(ready.Message, because) {
				return fmt.Errorf("Ready = %+v, want False BackendUnavailable saying %q", ready, because)
			}
			if op.Status.ActiveBackend != "" {
				return fmt.Errorf("active backend %q, want none", op.Status.ActiveBackend)
			}
			return nil
		}
	}
	o.waitOperator("the port is taken", unavailable("address already in use"))

	patch := func(spec string) { GinkgoHelper(); o.mergePatch(op, `{"spec":`+spec+`}`) }
	patch(fmt.Sprintf(`{"xds":{"port":%d,"tls":{"secretName":"no-such-secret"}}}`, swapXDSPort))
	o.waitOperator("the TLS Secret is missing", unavailable(operatorNamespace+"/no-such-secret"))

	// Creating the Secret is not watched (retried every 30 s); an edit is followed at once.
	serving, err := o.ca.Issue(ca.SPIFFEID("cluster.local", operatorNamespace, "xds-serving"))
	Expect(err).NotTo(HaveOccurred())
	tlsSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "xds-serving"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: serving.CertChainPEM, corev1.TLSPrivateKeyKey: serving.PrivateKeyPEM},
	}
	o.create(tlsSecret)
	DeferCleanup(func() { _ = o.client.Delete(ctx, tlsSecret) })
	patch(`{"xds":{"tls":{"secretName":"xds-serving"}}}`)
	o.waitOperator("TLS from the Secret", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	conn, err := tls.Dial("tcp", netns.HostPort(1, swapXDSPort), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // checks which certificate is served
	Expect(err).NotTo(HaveOccurred(), "the xDS server does not serve TLS")
	leaf := conn.ConnectionState().PeerCertificates[0]
	_ = conn.Close()
	Expect(leaf.URIs).To(HaveExactElements(HaveField("String()", ca.SPIFFEID("cluster.local", operatorNamespace, "xds-serving"))),
		"the xDS server serves a certificate not the Secret's")

	// Without a Secret: a certificate of the built-in CA, for the xds Service and the address.
	patch(`{"xds":{"tls":null}}`)
	o.waitOperator("TLS from the built-in CA", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	waitListening(netns.HostPort(1, swapXDSPort))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(o.ca.TrustBundlePEM())
	Eventually(func() error {
		for _, name := range []string{netns.Addr(1).String(), xdsServiceName + "." + operatorNamespace + ".svc"} {
			conn, err := tls.Dial("tcp", netns.HostPort(1, swapXDSPort), &tls.Config{RootCAs: roots, ServerName: name, NextProtos: []string{"h2"}})
			if err != nil {
				return fmt.Errorf("verifying the xDS server as %s with the CA's trust bundle: %w", name, err)
			}
			_ = conn.Close()
		}
		return nil
	}).Within(10 * time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())

	// Plain text only when asked for.
	patch(`{"xds":{"insecurePlaintext":true}}`)
	o.waitOperator("plain text", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	waitListening(netns.HostPort(1, swapXDSPort))
	Eventually(func() error {
		conn, err := tls.Dial("tcp", netns.HostPort(1, swapXDSPort), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // checks that no TLS is served
		if err != nil {
			return nil
		}
		_ = conn.Close()
		return errors.New("the xDS server still serves TLS with spec.xds.insecurePlaintext")
	}).Within(10 * time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())
	Expect(o.client.Delete(ctx, op)).To(Succeed())
	waitClosed(netns.HostPort(1, swapXDSPort))
}

// swapBackWhileDraining: swapping back to xds while the old xDS server drains replaces it (it
// missed the updates of its drain) and ends the drain; a settings change restarts the server.
func swapBackWhileDraining() {
	o.startSwapOperator()
	ctx := context.Background()
	op := o.createSMIOperator(v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{
		Port: swapXDSPort, SwapGracePeriod: &metav1.Duration{Duration: 10 * time.Minute},
	}})
	o.waitOperator("xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })

	o.setBackend(v1alpha1.BackendIstio)
	o.waitOperator("istio, xds draining", func(op *v1alpha1.SMIOperator) error {
		if op.Status.Draining == nil {
			return errors.New("not draining")
		}
		return settledBackend(op, v1alpha1.BackendIstio)
	})
	drainingEnded := openStream()
	o.setBackend(v1alpha1.BackendXDS)
	o.waitOperator("back to xds", func(op *v1alpha1.SMIOperator) error {
		if op.Status.Draining != nil {
			return fmt.Errorf("still draining until %s", op.Status.Draining.Until)
		}
		return settled(op, v1alpha1.BackendXDS)
	})
	waitListening(netns.HostPort(1, swapXDSPort))
	Eventually(drainingEnded).Within(30*time.Second).Should(Receive(),
		"swapping back kept the draining server, which missed the updates of its drain: a stream to it is still open")

	// A stream open on the server ends when it is replaced.
	streamEnded := openStream()
	o.mergePatch(op, `{"spec":{"accessMode":"Permissive"}}`)
	o.waitOperator("xds with the new settings", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	var ended error
	Eventually(streamEnded).Within(30*time.Second).Should(Receive(&ended),
		"the xDS server was not restarted with the new settings: a stream to it is still open")
	GinkgoWriter.Printf("the old server ended the stream: %v\n", ended)
	waitListening(netns.HostPort(1, swapXDSPort))
	Expect(o.client.Delete(ctx, op)).To(Succeed())
	waitClosed(netns.HostPort(1, swapXDSPort))
}

// openStream opens an ADS stream to the swap operator's xDS server and delivers how it ends.
func openStream() <-chan error {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	stream, err := askXDS(ctx, "default", "watcher", resourcev3.ListenerType, []string{"nothing-by-this-name"})
	Expect(err).NotTo(HaveOccurred())
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	return ended
}

// waitListening waits until something accepts connections on addr.
func waitListening(addr string) {
	GinkgoHelper()
	Expect(listening(addr, 30*time.Second)).To(Succeed())
}

// listening waits, at most within, until something accepts connections on addr.
func listening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eachBackendProgramsWithItsOwnSettings: a trust domain changed along with the backend
// belongs to the new backend. While that one cannot start, the backend that keeps running keeps
// programming with the settings it runs with: an SMI object edited meanwhile gets principals in
// the old trust domain, not a mix of the new trust domain and the old backend.
func eachBackendProgramsWithItsOwnSettings() {
	o.startSwapOperator()
	ctx := context.Background()
	ns := swapNamespace
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, // backendSwap may have made it
		&hub.HTTPRouteGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger-api"},
			Spec:       specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "all", PathRegex: ".*"}}},
		},
		workload(ns, "ledger"),
	} {
		if err := o.client.Create(ctx, obj); !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	}
	target := &hub.TrafficTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auditors-read-the-ledger"},
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: accessv1alpha3.IdentityBindingSubject{Kind: "ServiceAccount", Name: "ledger", Namespace: ns},
			Sources:     []accessv1alpha3.IdentityBindingSubject{{Kind: "ServiceAccount", Name: "auditor", Namespace: ns}},
			Rules:       []accessv1alpha3.TrafficTargetRule{{Kind: smi.HTTPRouteGroupKind, Name: "ledger-api"}},
		},
	}
	o.create(target)
	DeferCleanup(func() { _ = o.client.Delete(context.Background(), target) })

	op := o.createSMIOperator(v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio, XDS: v1alpha1.XDSSpec{Port: swapXDSPort}})
	o.waitOperator("istio", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendIstio) })
	o.waitPolicyPrincipals(target, []string{"cluster.local/ns/" + ns + "/sa/auditor"}, "example.org")

	// To xds in another trust domain, on a port the enforcing operator's xDS server holds: xds
	// cannot start, Istio keeps running as it was.
	o.mergePatch(op, fmt.Sprintf(`{"spec":{"backend":"xds","trustDomain":"example.org","xds":{"port":%d}}}`, xdsPort))
	o.waitOperator("xds unavailable, istio kept", func(op *v1alpha1.SMIOperator) error {
		ready := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != v1alpha1.ReasonBackendUnavailable || ready.ObservedGeneration != op.Generation {
			return fmt.Errorf("Ready = %+v, want BackendUnavailable", ready)
		}
		if op.Status.ActiveBackend != v1alpha1.BackendIstio {
			return fmt.Errorf("active backend %q, want istio", op.Status.ActiveBackend)
		}
		return nil
	})
	o.mergePatch(target, `{"spec":{"sources":[{"kind":"ServiceAccount","name":"auditor","namespace":"`+ns+`"},`+
		`{"kind":"ServiceAccount","name":"clerk","namespace":"`+ns+`"}]}}`)
	o.waitPolicyPrincipals(target, []string{"cluster.local/ns/" + ns + "/sa/auditor", "cluster.local/ns/" + ns + "/sa/clerk"}, "example.org")

	// Once xds can start, it takes over and Istio's objects go.
	o.mergePatch(op, fmt.Sprintf(`{"spec":{"xds":{"port":%d}}}`, swapXDSPort))
	o.waitOperator("xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	o.waitIstioObjects(ns, nil)
	Expect(o.client.Delete(ctx, op)).To(Succeed())
	waitClosed(netns.HostPort(1, swapXDSPort))
}

// waitPolicyPrincipals waits until the AuthorizationPolicies generated from target name every
// principal in want and none containing never, or fails after 30 s.
func (o *operator) waitPolicyPrincipals(target *hub.TrafficTarget, want []string, never string) {
	GinkgoHelper()
	Eventually(func() error { return o.policyPrincipals(target, want, never) }).Within(30 * time.Second).ProbeEvery(100 * time.Millisecond).Should(Succeed())
}

func (o *operator) policyPrincipals(target *hub.TrafficTarget, want []string, never string) error {
	policies := &securityv1.AuthorizationPolicyList{}
	if err := o.client.List(context.Background(), policies, client.InNamespace(target.Namespace),
		client.MatchingLabels(smi.SourceLabels(smi.TrafficTargetKind, target.Name))); err != nil {
		return err
	}
	if len(policies.Items) == 0 {
		return fmt.Errorf("no AuthorizationPolicy generated from %s", target.Name)
	}
	for _, p := range policies.Items {
		js, err := json.Marshal(&p.Spec)
		if err != nil {
			return err
		}
		if strings.Contains(string(js), never) {
			return fmt.Errorf("AuthorizationPolicy %s names %q: %s", p.Name, never, js)
		}
		for _, principal := range want {
			if !strings.Contains(string(js), `"`+principal+`"`) {
				return fmt.Errorf("AuthorizationPolicy %s does not name %q: %s", p.Name, principal, js)
			}
		}
	}
	return nil
}

// rpcsThroughXDSServerRestarts: a proxyless client calling continuously through the xDS
// server sees no failed RPC while the server is replaced by a settings change, nor while the
// operator itself restarts. A new server answers no proxy before it holds every Service, split
// and access rule: reconnecting proxies asking for what it has not been fed yet would otherwise be
// told it does not exist (in state-of-the-world xDS a missing listener or cluster is a deletion).
// Hundreds of other Services and splits make the feeding take longer than a reconnect.
func rpcsThroughXDSServerRestarts() {
	o.startSwapOperator()
	ctx := context.Background()
	ns := swapNamespace
	o.ensureNamespace(ns)
	o.service(ns, "relay", o.backend(ns, "relay", 16))
	o.service(ns, "relay-v1", o.backend(ns, "relay-v1", 17))
	o.service(ns, "relay-v2", o.backend(ns, "relay-v2", 18))
	o.create(&hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "relay"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "relay", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "relay-v1", Weight: 100}, {Service: "relay-v2", Weight: 0},
		}},
	})
	listeners := []string{"relay." + ns + ".svc.cluster.local:80"}
	for i := range 300 {
		name := fmt.Sprintf("relay-other-%d", i)
		listeners = append(listeners, name+"."+ns+".svc.cluster.local:80")
		o.service(ns, name)
		o.create(&hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: name, Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: "relay-v1", Weight: 100},
			}},
		})
	}
	op := o.createSMIOperator(v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{Port: swapXDSPort}})
	o.waitOperator("xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	relay := dial(ns, "relay", o.clientBootstrap(ns, "relay-client"))
	relay.waitFor(ctx, grpcxds.FromBackend("relay-v1"))

	calls := startCalling(ctx, map[string]*grpcClient{"relay-v1": relay})
	// A settings change replaces the server: the client's stream to the old one ends.
	streamEnded := openStream()
	o.mergePatch(op, `{"spec":{"xds":{"certificateTTL":"2h"}}}`)
	Eventually(streamEnded).Within(30*time.Second).Should(Receive(), "the xDS server was not replaced by the settings change")
	// A proxy asking the new server the moment it listens is answered with everything or nothing.
	firstAnswer(ns, listeners)
	o.waitOperator("xds with the new settings", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	time.Sleep(3 * time.Second) // the client reconnects and is answered
	ok, failed := calls.stop()
	Expect(failed).To(BeEmpty(), "%d of %d RPCs failed through a settings change of the xDS server", len(failed), ok+len(failed))
	GinkgoWriter.Printf("%d RPCs through a settings change of the xDS server, none failed\n", ok)

	calls = startCalling(ctx, map[string]*grpcClient{"relay-v1": relay})
	streamEnded = openStream()
	o.restartSwapOperator()
	Eventually(streamEnded).Within(30*time.Second).Should(Receive(), "the operator's xDS server did not stop with the operator")
	firstAnswer(ns, listeners)
	o.waitOperator("xds after the restart", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	waitListening(netns.HostPort(1, swapXDSPort))
	time.Sleep(3 * time.Second)
	ok, failed = calls.stop()
	Expect(failed).To(BeEmpty(), "%d of %d RPCs failed through a restart of the operator", len(failed), ok+len(failed))
	Expect(ok).To(BeNumerically(">=", 100), "RPCs made through the restart")
	GinkgoWriter.Printf("%d RPCs through a restart of the operator, none failed\n", ok)
}

// firstAnswer asks the swap operator's xDS server for the listeners as soon as it answers, over
// and over until it does, and fails the test unless its first answer holds every one.
func firstAnswer(ns string, listeners []string) {
	GinkgoHelper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stream, err := askXDS(ctx, ns, "first-answer", resourcev3.ListenerType, listeners)
		var resp *discoveryv3.DiscoveryResponse
		if err == nil {
			resp, err = stream.Recv()
		}
		cancel()
		if err != nil {
			time.Sleep(2 * time.Millisecond) // not listening yet
			continue
		}
		Expect(resp.Resources).To(HaveLen(len(listeners)), "the listeners in the new xDS server's first answer: proxies would drop the others")
		return
	}
	Fail("the new xDS server did not answer within a minute")
}

// smiOperatorCountsRejectedObjects: with the backend the SMIOperator selects, a split whose
// route configuration a proxy refuses turns Programmed=False RejectedByProxies as with a fixed
// --backend=xds (refuseSplitRoute), and the SMIOperator counts it in
// status.smiObjects.rejectedByProxies, with Degraded, until the proxy accepts a later version.
func smiOperatorCountsRejectedObjects() {
	o.startSwapOperator()
	ns := swapNamespace
	o.ensureNamespace(ns)
	o.createSMIOperator(v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{Port: swapXDSPort}})
	o.waitOperator("xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	o.refuseSplitRoute(ns, "refused", func(want int32) {
		o.waitOperator(fmt.Sprintf("%d rejected by proxies", want), func(op *v1alpha1.SMIOperator) error {
			degraded := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionDegraded)
			switch {
			case op.Status.SMIObjects == nil || op.Status.SMIObjects.RejectedByProxies != want:
				return fmt.Errorf("smiObjects %+v", op.Status.SMIObjects)
			case want > 0 && (degraded == nil || degraded.Status != metav1.ConditionTrue):
				return fmt.Errorf("Degraded %+v, want True", degraded)
			}
			return nil
		})
		Expect(o.printedColumn("Rejected")).To(Equal(float64(want)), "kubectl get smioperator -o wide prints Rejected")
	})
}

// printedColumn is what `kubectl get smioperator -o wide` prints in column of the SMIOperator:
// the cell of the API server's Table for it.
func (o *operator) printedColumn(column string) any {
	GinkgoHelper()
	httpClient, err := rest.HTTPClientFor(o.env.Config)
	Expect(err).NotTo(HaveOccurred())
	url, err := url.JoinPath(o.env.Config.Host, "apis", v1alpha1.GroupVersion.Group, v1alpha1.GroupVersion.Version, "smioperators", v1alpha1.SingletonName)
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequest(http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	var table metav1.Table
	Expect(json.Unmarshal(body, &table)).To(Succeed(), "GET %s: %s", url, body)
	Expect(table.Rows).To(HaveLen(1), "the Table's rows for the SMIOperator (HTTP %s)", resp.Status)
	for i, c := range table.ColumnDefinitions {
		if c.Name == column {
			return table.Rows[0].Cells[i]
		}
	}
	Fail(fmt.Sprintf("no column %q among %v", column, table.ColumnDefinitions))
	return nil
}
