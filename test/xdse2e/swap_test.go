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
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
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
	"github.com/smi-operator/smi-operator/xds/ca"
	"github.com/smi-operator/smi-operator/xds/server"
)

// extraSplits is how many TrafficSplits TestBackendSwap has besides web.
const extraSplits = 500

// swapGracePeriod is how long the xDS server keeps serving after the swap to istio; long enough
// for many RPCs, short enough for a test.
const swapGracePeriod = 15 * time.Second

// TestBackendSwap edits the SMIOperator's backend istio → xds → istio with a TrafficSplit and a
// TrafficTarget present, then deletes it:
//   - each step leaves exactly the generated objects expected;
//   - istio → xds: no generated Istio object is deleted before the xDS server serves the split's
//     routes and the target's rule (an admission webhook holds the first deletion and asks the xDS
//     server);
//   - xds → istio: every Istio object exists once the xDS server stops taking updates, and a
//     proxyless client calling continuously through it sees no failed RPC until the grace period
//     ends; then the server stops;
//   - deleting the SMIOperator deletes the generated objects and leaves the SMI objects.
func TestBackendSwap(t *testing.T) {
	o := start(t)
	o.startSwapOperator(t)
	ctx := context.Background()
	ns := swapNamespace
	o.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	o.service(t, ns, "web", o.backend(t, ns, "web", 11))
	o.service(t, ns, "web-v1", o.backend(t, ns, "web-v1", 12))
	o.service(t, ns, "web-v2", o.backend(t, ns, "web-v2", 13))
	// vault's xDS-enabled server starts once an xDS server runs; its Service exists from the start.
	o.service(t, ns, "vault", netns.Addr(14).String())
	split := &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "web", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "web-v1", Weight: 100}, {Service: "web-v2", Weight: 0},
		}},
	}
	o.create(t, split)
	// More splits, so that retiring Istio before the xDS server has all of them would show: the
	// check below asks for every one in a single request.
	routeNames := []string{"web." + ns + ".svc.cluster.local:80"}
	for i := range extraSplits {
		name := fmt.Sprintf("shop-%d", i)
		o.service(t, ns, name)
		o.create(t, &hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: name, Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: "web-v1", Weight: 100}, {Service: "web-v2", Weight: 0},
			}},
		})
		routeNames = append(routeNames, name+"."+ns+".svc.cluster.local:80")
	}
	target := o.tellersOpenTheVault(t, ns)
	o.create(t, workload(ns, "vault")) // Istio's policy selects the destination's workloads

	// 1. istio.
	op := o.createSMIOperator(t, v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio, XDS: v1alpha1.XDSSpec{
		Port: swapXDSPort, SwapGracePeriod: &metav1.Duration{Duration: swapGracePeriod},
	}})
	o.waitOperator(t, "istio programs everything", func(op *v1alpha1.SMIOperator) error {
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
	o.waitIstioObjects(t, ns, wantIstio)
	o.waitProgrammed(t, split)

	// 2. istio → xds. An admission webhook sees every deletion of a generated Istio object; at
	// the first one, before letting it through, it asks the xDS server for the split's routes and
	// the rule of the target's destination.
	teller := ca.SPIFFEID("cluster.local", ns, "teller")
	atFirstDelete := o.checkAtFirstIstioDelete(t, ns, func(ctx context.Context) error {
		if err := servesContaining(ctx, ns, "teller", resourcev3.RouteType, routeNames, "outbound|80||web-v1."+ns); err != nil {
			return fmt.Errorf("the splits: %w", err)
		}
		listener := "grpc/server?xds.resource.listening_address=" + netns.HostPort(14, backendPort)
		if err := servesContaining(ctx, ns, "vault", resourcev3.ListenerType, []string{listener}, teller); err != nil {
			return fmt.Errorf("the target: %w", err)
		}
		return nil
	})
	o.setBackend(t, v1alpha1.BackendXDS)
	o.waitOperator(t, "xds programs everything", func(op *v1alpha1.SMIOperator) error {
		return settled(op, v1alpha1.BackendXDS)
	})
	o.waitIstioObjects(t, ns, nil)
	select {
	case err := <-atFirstDelete:
		if err != nil {
			t.Fatalf("when the first generated Istio object was deleted, the xDS server did not serve the SMI objects yet: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook saw no deletion of a generated Istio object")
	}
	o.xdsBackend(t, ns, "vault", 14)
	web := dial(t, ns, "web", o.clientBootstrap(t, ns, "teller"))
	vault := dial(t, ns, "vault", o.clientBootstrap(t, ns, "teller"))
	web.waitFor(ctx, grpcxds.FromBackend("web-v1"))
	vault.waitFor(ctx, grpcxds.FromBackend("vault"))
	o.waitProgrammed(t, split)
	// EndpointSlices, watched only since an xDS server first ran, are followed.
	moved := o.backend(t, ns, "web-v1-moved", 15)
	o.updateSlice(t, ns, "web-v1", func(s *discoveryv1.EndpointSlice) { *s = *endpointSlice(ns, "web-v1", moved) })
	waitOnly(t, web, ctx, "web-v1-moved")

	// 3. xds → istio, calling through the xDS server all along.
	calls := startCalling(ctx, map[string]*grpcClient{"web-v1-moved": web, "vault": vault})
	swapped := time.Now()
	o.setBackend(t, v1alpha1.BackendIstio)
	var drainUntil time.Time
	o.waitOperator(t, "istio active, xds draining", func(op *v1alpha1.SMIOperator) error {
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
	if got := o.istioObjects(t, ns); !slices.Equal(got, wantIstio) {
		t.Fatalf("when the xDS server started draining, the generated Istio objects were %v, want %v", got, wantIstio)
	}
	if d := drainUntil.Sub(swapped); d < swapGracePeriod-time.Second || d > swapGracePeriod+30*time.Second {
		t.Errorf("draining until %s, %s after the swap; want the grace period, %s", drainUntil, d, swapGracePeriod)
	}
	// Connected clients would keep their last configuration even with the server gone: a new
	// request shows the server itself still answers, with its last configuration.
	time.Sleep(time.Until(drainUntil.Add(-3 * time.Second)))
	askCtx, cancelAsk := context.WithTimeout(ctx, 2*time.Second)
	err := servesContaining(askCtx, ns, "teller", resourcev3.RouteType, routeNames, "outbound|80||web-v1."+ns)
	cancelAsk()
	if err != nil {
		t.Fatalf("3 s before the grace period ends, the draining xDS server does not serve the splits: %v", err)
	}
	o.waitOperator(t, "the grace period ended", func(op *v1alpha1.SMIOperator) error {
		if op.Status.Draining != nil {
			return fmt.Errorf("still draining until %s", op.Status.Draining.Until)
		}
		return settled(op, v1alpha1.BackendIstio)
	})
	ok, failed := calls.stop()
	if len(failed) > 0 {
		t.Fatalf("%d of %d RPCs failed between the swap and the end of the grace period; first: %v", len(failed), ok+len(failed), failed[0])
	}
	if ok < 100 {
		t.Fatalf("only %d RPCs were made during the swap and the grace period", ok)
	}
	t.Logf("%d RPCs through the xDS server between the swap to istio and the end of the grace period, none failed", ok)
	if time.Now().Before(drainUntil) {
		t.Errorf("draining ended at %s, before %s", time.Now(), drainUntil)
	}
	waitClosed(t, netns.HostPort(1, swapXDSPort))
	o.waitIstioObjects(t, ns, wantIstio)

	// Each step was announced on the SMIOperator.
	o.waitEventReasons(t, op, v1alpha1.ReasonSwapping, v1alpha1.ReasonDraining, v1alpha1.ReasonSettled, v1alpha1.ReasonBackendReady)

	// 4. Deleting the SMIOperator stops programming and removes what was generated.
	if err := o.client.Delete(ctx, op); err != nil {
		t.Fatal(err)
	}
	o.waitIstioObjects(t, ns, nil)
	o.waitCondition(t, split, smi.ConditionProgrammed, metav1.ConditionFalse, backends.ReasonNoBackend)
	for _, obj := range []client.Object{&hub.TrafficSplit{}, &hub.TrafficTarget{}} {
		key := client.ObjectKeyFromObject(split)
		if _, ok := obj.(*hub.TrafficTarget); ok {
			key = client.ObjectKeyFromObject(target)
		}
		if err := o.client.Get(ctx, key, obj); err != nil {
			t.Errorf("the SMI object %s is gone with the SMIOperator: %v", key, err)
		}
	}
}

// waitEventReasons waits until Events about op (this one, not an earlier test's of the same
// name) carry every reason listed.
func (o *operator) waitEventReasons(t *testing.T, op *v1alpha1.SMIOperator, reasons ...string) {
	t.Helper()
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		list := &eventsv1.EventList{}
		if err := o.client.List(context.Background(), list); err != nil {
			t.Fatal(err)
		}
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
	})
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
func (o *operator) createSMIOperator(t *testing.T, spec v1alpha1.SMIOperatorSpec) *v1alpha1.SMIOperator {
	t.Helper()
	op := &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}, Spec: spec}
	o.create(t, op)
	t.Cleanup(func() { _ = o.client.Delete(context.Background(), op) })
	return op
}

// mergePatch applies a JSON merge patch to obj.
func (o *operator) mergePatch(t *testing.T, obj client.Object, patch string) {
	t.Helper()
	if err := o.client.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

func (o *operator) setBackend(t *testing.T, backend v1alpha1.Backend) {
	t.Helper()
	o.mergePatch(t, &v1alpha1.SMIOperator{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SingletonName}},
		fmt.Sprintf(`{"spec":{"backend":%q}}`, backend))
}

// waitOperator waits until check accepts the SMIOperator, or fails after a minute.
func (o *operator) waitOperator(t *testing.T, what string, check func(*v1alpha1.SMIOperator) error) {
	t.Helper()
	eventually(t, time.Minute, 50*time.Millisecond, func() error {
		op := &v1alpha1.SMIOperator{}
		err := o.client.Get(context.Background(), client.ObjectKey{Name: v1alpha1.SingletonName}, op)
		if err == nil {
			err = check(op)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// istioObjects lists the generated Istio objects of a namespace as sorted "Kind/name".
func (o *operator) istioObjects(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, list := range []client.ObjectList{
		&networkingv1.VirtualServiceList{}, &networkingv1.DestinationRuleList{},
		&securityv1.AuthorizationPolicyList{}, &securityv1.PeerAuthenticationList{},
	} {
		if err := o.client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{smi.LabelManagedBy: smi.ManagedByValue}); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		kind := strings.TrimSuffix(fmt.Sprintf("%T", list), "List")
		kind = kind[strings.LastIndex(kind, ".")+1:]
		for _, item := range items {
			out = append(out, kind+"/"+item.(client.Object).GetName())
		}
	}
	slices.Sort(out)
	return out
}

func (o *operator) waitIstioObjects(t *testing.T, ns string, want []string) {
	t.Helper()
	eventually(t, time.Minute, 50*time.Millisecond, func() error {
		if got := o.istioObjects(t, ns); !slices.Equal(got, want) {
			return fmt.Errorf("generated Istio objects in %s: %v, want %v", ns, got, want)
		}
		return nil
	})
}

// checkAtFirstIstioDelete registers, for this test, an admission webhook on the DELETEs of
// generated Istio objects in ns: the first one runs check before it is let through (the deletion
// waits), and its outcome is delivered. Every deletion is allowed.
func (o *operator) checkAtFirstIstioDelete(t *testing.T, ns string, check func(context.Context) error) <-chan error {
	t.Helper()
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
	o.create(t, config)
	t.Cleanup(func() { _ = o.client.Delete(context.Background(), config) })
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

// askXDSOn is askXDS on the xDS server listening on port (over TLS, with the token ctx carries
// in its outgoing "authorization" metadata, if any).
func askXDSOn(ctx context.Context, port uint16, ns, serviceAccount, typeURL string, names []string) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, error) {
	conn, err := op.dialXDS(port)
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
// by, until stop.
func startCalling(ctx context.Context, clients map[string]*grpcClient) *caller {
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
				case err == nil && r.Backend != want:
					err = fmt.Errorf("answered by %s, want %s", r.Backend, want)
				}
				if err != nil {
					c.failed = append(c.failed, fmt.Errorf("%s at %s: %w", want, time.Now().Format(time.StampMilli), err))
				} else {
					c.ok++
				}
			}
			time.Sleep(10 * time.Millisecond)
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
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		_ = conn.Close()
		return fmt.Errorf("the xDS server still listens on %s after the grace period", addr)
	})
}

// TestBackendUnavailable: a backend that cannot run says why in the SMIOperator's status
// (Ready=False BackendUnavailable), and an edit that fixes it is followed at once; the xDS server
// then serves TLS with the certificate of the Secret the spec names, with one of the built-in CA
// once the Secret is dropped from the spec, and plain text only when the spec opts out of TLS.
func TestBackendUnavailable(t *testing.T) {
	o := start(t)
	o.startSwapOperator(t)
	ctx := context.Background()
	// The enforcing operator's xDS server holds this port on the same address.
	op := o.createSMIOperator(t, v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{Port: xdsPort}})
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
	o.waitOperator(t, "the port is taken", unavailable("address already in use"))

	patch := func(spec string) { t.Helper(); o.mergePatch(t, op, `{"spec":`+spec+`}`) }
	patch(fmt.Sprintf(`{"xds":{"port":%d,"tls":{"secretName":"no-such-secret"}}}`, swapXDSPort))
	o.waitOperator(t, "the TLS Secret is missing", unavailable(operatorNamespace+"/no-such-secret"))

	// Creating the Secret is not watched (retried every 30 s); an edit is followed at once.
	serving, err := o.ca.Issue(ca.SPIFFEID("cluster.local", operatorNamespace, "xds-serving"))
	if err != nil {
		t.Fatal(err)
	}
	tlsSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "xds-serving"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: serving.CertChainPEM, corev1.TLSPrivateKeyKey: serving.PrivateKeyPEM},
	}
	o.create(t, tlsSecret)
	t.Cleanup(func() { _ = o.client.Delete(ctx, tlsSecret) })
	patch(`{"xds":{"tls":{"secretName":"xds-serving"}}}`)
	o.waitOperator(t, "TLS from the Secret", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	conn, err := tls.Dial("tcp", netns.HostPort(1, swapXDSPort), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // checks which certificate is served
	if err != nil {
		t.Fatalf("the xDS server does not serve TLS: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	_ = conn.Close()
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != ca.SPIFFEID("cluster.local", operatorNamespace, "xds-serving") {
		t.Fatalf("the xDS server serves a certificate for %v, not the Secret's", leaf.URIs)
	}

	// Without a Secret: a certificate of the built-in CA, for the xds Service and the address.
	patch(`{"xds":{"tls":null}}`)
	o.waitOperator(t, "TLS from the built-in CA", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	waitListening(t, netns.HostPort(1, swapXDSPort))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(o.ca.TrustBundlePEM())
	eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		for _, name := range []string{netns.Addr(1).String(), xdsServiceName + "." + operatorNamespace + ".svc"} {
			conn, err := tls.Dial("tcp", netns.HostPort(1, swapXDSPort), &tls.Config{RootCAs: roots, ServerName: name, NextProtos: []string{"h2"}})
			if err != nil {
				return fmt.Errorf("verifying the xDS server as %s with the CA's trust bundle: %w", name, err)
			}
			_ = conn.Close()
		}
		return nil
	})

	// Plain text only when asked for.
	patch(`{"xds":{"insecurePlaintext":true}}`)
	o.waitOperator(t, "plain text", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	waitListening(t, netns.HostPort(1, swapXDSPort))
	eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		conn, err := tls.Dial("tcp", netns.HostPort(1, swapXDSPort), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // checks that no TLS is served
		if err != nil {
			return nil
		}
		_ = conn.Close()
		return errors.New("the xDS server still serves TLS with spec.xds.insecurePlaintext")
	})
	if err := o.client.Delete(ctx, op); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, netns.HostPort(1, swapXDSPort))
}

// TestSwapBackWhileDraining: swapping back to xds while the old xDS server drains replaces it (it
// missed the updates of its drain) and ends the drain; a settings change restarts the server.
func TestSwapBackWhileDraining(t *testing.T) {
	o := start(t)
	o.startSwapOperator(t)
	ctx := context.Background()
	op := o.createSMIOperator(t, v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{
		Port: swapXDSPort, SwapGracePeriod: &metav1.Duration{Duration: 10 * time.Minute},
	}})
	o.waitOperator(t, "xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })

	o.setBackend(t, v1alpha1.BackendIstio)
	o.waitOperator(t, "istio, xds draining", func(op *v1alpha1.SMIOperator) error {
		if op.Status.Draining == nil {
			return errors.New("not draining")
		}
		return settledBackend(op, v1alpha1.BackendIstio)
	})
	drainingEnded := openStream(t)
	o.setBackend(t, v1alpha1.BackendXDS)
	o.waitOperator(t, "back to xds", func(op *v1alpha1.SMIOperator) error {
		if op.Status.Draining != nil {
			return fmt.Errorf("still draining until %s", op.Status.Draining.Until)
		}
		return settled(op, v1alpha1.BackendXDS)
	})
	waitListening(t, netns.HostPort(1, swapXDSPort))
	select {
	case <-drainingEnded:
	case <-time.After(30 * time.Second):
		t.Fatal("swapping back kept the draining server, which missed the updates of its drain: a stream to it is still open")
	}

	// A stream open on the server ends when it is replaced.
	streamEnded := openStream(t)
	o.mergePatch(t, op, `{"spec":{"accessMode":"Permissive"}}`)
	o.waitOperator(t, "xds with the new settings", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	select {
	case err := <-streamEnded:
		t.Logf("the old server ended the stream: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the xDS server was not restarted with the new settings: a stream to it is still open")
	}
	waitListening(t, netns.HostPort(1, swapXDSPort))
	if err := o.client.Delete(ctx, op); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, netns.HostPort(1, swapXDSPort))
}

// openStream opens an ADS stream to the swap operator's xDS server and delivers how it ends.
func openStream(t *testing.T) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := askXDS(ctx, "default", "watcher", resourcev3.ListenerType, []string{"nothing-by-this-name"})
	if err != nil {
		t.Fatal(err)
	}
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
func waitListening(t *testing.T, addr string) {
	t.Helper()
	if err := listening(addr, 30*time.Second); err != nil {
		t.Fatal(err)
	}
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

// TestEachBackendProgramsWithItsOwnSettings: a trust domain changed along with the backend
// belongs to the new backend. While that one cannot start, the backend that keeps running keeps
// programming with the settings it runs with: an SMI object edited meanwhile gets principals in
// the old trust domain, not a mix of the new trust domain and the old backend.
func TestEachBackendProgramsWithItsOwnSettings(t *testing.T) {
	o := start(t)
	o.startSwapOperator(t)
	ctx := context.Background()
	ns := swapNamespace
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, // TestBackendSwap may have made it
		&hub.HTTPRouteGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger-api"},
			Spec:       specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{Name: "all", PathRegex: ".*"}}},
		},
		workload(ns, "ledger"),
	} {
		if err := o.client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
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
	o.create(t, target)
	t.Cleanup(func() { _ = o.client.Delete(context.Background(), target) })

	op := o.createSMIOperator(t, v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio, XDS: v1alpha1.XDSSpec{Port: swapXDSPort}})
	o.waitOperator(t, "istio", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendIstio) })
	o.waitPolicyPrincipals(t, target, []string{"cluster.local/ns/" + ns + "/sa/auditor"}, "example.org")

	// To xds in another trust domain, on a port the enforcing operator's xDS server holds: xds
	// cannot start, Istio keeps running as it was.
	o.mergePatch(t, op, fmt.Sprintf(`{"spec":{"backend":"xds","trustDomain":"example.org","xds":{"port":%d}}}`, xdsPort))
	o.waitOperator(t, "xds unavailable, istio kept", func(op *v1alpha1.SMIOperator) error {
		ready := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != v1alpha1.ReasonBackendUnavailable || ready.ObservedGeneration != op.Generation {
			return fmt.Errorf("Ready = %+v, want BackendUnavailable", ready)
		}
		if op.Status.ActiveBackend != v1alpha1.BackendIstio {
			return fmt.Errorf("active backend %q, want istio", op.Status.ActiveBackend)
		}
		return nil
	})
	o.mergePatch(t, target, `{"spec":{"sources":[{"kind":"ServiceAccount","name":"auditor","namespace":"`+ns+`"},`+
		`{"kind":"ServiceAccount","name":"clerk","namespace":"`+ns+`"}]}}`)
	o.waitPolicyPrincipals(t, target, []string{"cluster.local/ns/" + ns + "/sa/auditor", "cluster.local/ns/" + ns + "/sa/clerk"}, "example.org")

	// Once xds can start, it takes over and Istio's objects go.
	o.mergePatch(t, op, fmt.Sprintf(`{"spec":{"xds":{"port":%d}}}`, swapXDSPort))
	o.waitOperator(t, "xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	o.waitIstioObjects(t, ns, nil)
	if err := o.client.Delete(ctx, op); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, netns.HostPort(1, swapXDSPort))
}

// waitPolicyPrincipals waits until the AuthorizationPolicies generated from target name every
// principal in want and none containing never, or fails after 30 s.
func (o *operator) waitPolicyPrincipals(t *testing.T, target *hub.TrafficTarget, want []string, never string) {
	t.Helper()
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error { return o.policyPrincipals(target, want, never) })
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

// TestRPCsThroughXDSServerRestarts: a proxyless client calling continuously through the xDS
// server sees no failed RPC while the server is replaced by a settings change, nor while the
// operator itself restarts. A new server answers no proxy before it holds every Service, split
// and access rule: reconnecting proxies asking for what it has not been fed yet would otherwise be
// told it does not exist (in state-of-the-world xDS a missing listener or cluster is a deletion).
// Hundreds of other Services and splits make the feeding take longer than a reconnect.
func TestRPCsThroughXDSServerRestarts(t *testing.T) {
	o := start(t)
	o.startSwapOperator(t)
	ctx := context.Background()
	ns := swapNamespace
	if err := o.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	o.service(t, ns, "relay", o.backend(t, ns, "relay", 16))
	o.service(t, ns, "relay-v1", o.backend(t, ns, "relay-v1", 17))
	o.service(t, ns, "relay-v2", o.backend(t, ns, "relay-v2", 18))
	o.create(t, &hub.TrafficSplit{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "relay"},
		Spec: splitv1alpha4.TrafficSplitSpec{Service: "relay", Backends: []splitv1alpha4.TrafficSplitBackend{
			{Service: "relay-v1", Weight: 100}, {Service: "relay-v2", Weight: 0},
		}},
	})
	listeners := []string{"relay." + ns + ".svc.cluster.local:80"}
	for i := range 300 {
		name := fmt.Sprintf("relay-other-%d", i)
		listeners = append(listeners, name+"."+ns+".svc.cluster.local:80")
		o.service(t, ns, name)
		o.create(t, &hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: name, Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: "relay-v1", Weight: 100},
			}},
		})
	}
	op := o.createSMIOperator(t, v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{Port: swapXDSPort}})
	o.waitOperator(t, "xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	relay := dial(t, ns, "relay", o.clientBootstrap(t, ns, "relay-client"))
	relay.waitFor(ctx, grpcxds.FromBackend("relay-v1"))

	calls := startCalling(ctx, map[string]*grpcClient{"relay-v1": relay})
	// A settings change replaces the server: the client's stream to the old one ends.
	streamEnded := openStream(t)
	o.mergePatch(t, op, `{"spec":{"xds":{"certificateTTL":"2h"}}}`)
	select {
	case <-streamEnded:
	case <-time.After(30 * time.Second):
		t.Fatal("the xDS server was not replaced by the settings change")
	}
	// A proxy asking the new server the moment it listens is answered with everything or nothing.
	firstAnswer(t, ns, listeners)
	o.waitOperator(t, "xds with the new settings", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	time.Sleep(3 * time.Second) // the client reconnects and is answered
	ok, failed := calls.stop()
	if len(failed) > 0 {
		t.Fatalf("%d of %d RPCs failed through a settings change of the xDS server; first: %v", len(failed), ok+len(failed), failed[0])
	}
	t.Logf("%d RPCs through a settings change of the xDS server, none failed", ok)

	calls = startCalling(ctx, map[string]*grpcClient{"relay-v1": relay})
	streamEnded = openStream(t)
	o.restartSwapOperator(t)
	select {
	case <-streamEnded:
	case <-time.After(30 * time.Second):
		t.Fatal("the operator's xDS server did not stop with the operator")
	}
	firstAnswer(t, ns, listeners)
	o.waitOperator(t, "xds after the restart", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	waitListening(t, netns.HostPort(1, swapXDSPort))
	time.Sleep(3 * time.Second)
	ok, failed = calls.stop()
	if len(failed) > 0 {
		t.Fatalf("%d of %d RPCs failed through a restart of the operator; first: %v", len(failed), ok+len(failed), failed[0])
	}
	if ok < 100 {
		t.Fatalf("only %d RPCs were made through the restart", ok)
	}
	t.Logf("%d RPCs through a restart of the operator, none failed", ok)
}

// firstAnswer asks the swap operator's xDS server for the listeners as soon as it answers, over
// and over until it does, and fails the test unless its first answer holds every one.
func firstAnswer(t *testing.T, ns string, listeners []string) {
	t.Helper()
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
		if len(resp.Resources) != len(listeners) {
			t.Fatalf("the new xDS server's first answer holds %d of the %d listeners asked for: proxies would drop the others", len(resp.Resources), len(listeners))
		}
		return
	}
	t.Fatal("the new xDS server did not answer within a minute")
}

// TestSMIOperatorCountsRejectedObjects: with the backend the SMIOperator selects, a split whose
// route configuration a proxy refuses turns Programmed=False RejectedByProxies as with a fixed
// --backend=xds (refuseSplitRoute), and the SMIOperator counts it in
// status.smiObjects.rejectedByProxies, with Degraded, until the proxy accepts a later version.
func TestSMIOperatorCountsRejectedObjects(t *testing.T) {
	o := start(t)
	o.startSwapOperator(t)
	ns := swapNamespace
	if err := o.client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	o.createSMIOperator(t, v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS, XDS: v1alpha1.XDSSpec{Port: swapXDSPort}})
	o.waitOperator(t, "xds", func(op *v1alpha1.SMIOperator) error { return settled(op, v1alpha1.BackendXDS) })
	o.refuseSplitRoute(t, ns, "refused", func(want int32) {
		o.waitOperator(t, fmt.Sprintf("%d rejected by proxies", want), func(op *v1alpha1.SMIOperator) error {
			degraded := meta.FindStatusCondition(op.Status.Conditions, v1alpha1.ConditionDegraded)
			switch {
			case op.Status.SMIObjects == nil || op.Status.SMIObjects.RejectedByProxies != want:
				return fmt.Errorf("smiObjects %+v", op.Status.SMIObjects)
			case want > 0 && (degraded == nil || degraded.Status != metav1.ConditionTrue):
				return fmt.Errorf("Degraded %+v, want True", degraded)
			}
			return nil
		})
		if got := o.printedColumn(t, "Rejected"); got != float64(want) {
			t.Errorf("kubectl get smioperator -o wide prints Rejected %v, want %d", got, want)
		}
	})
}

// printedColumn is what `kubectl get smioperator -o wide` prints in column of the SMIOperator:
// the cell of the API server's Table for it.
func (o *operator) printedColumn(t *testing.T, column string) any {
	t.Helper()
	httpClient, err := rest.HTTPClientFor(o.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	url, err := url.JoinPath(o.env.Config.Host, "apis", v1alpha1.GroupVersion.Group, v1alpha1.GroupVersion.Version, "smioperators", v1alpha1.SingletonName)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("a Table of %d rows for the SMIOperator (HTTP %s)", len(table.Rows), resp.Status)
	}
	for i, c := range table.ColumnDefinitions {
		if c.Name == column {
			return table.Rows[0].Cells[i]
		}
	}
	t.Fatalf("no column %q among %v", column, table.ColumnDefinitions)
	return nil
}
