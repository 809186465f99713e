package xdse2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
	"github.com/smi-operator/smi-operator/test/testenv"
)

// The xDS clients that are not grpc-go (C-core: ccore_test.go, grpc-js: grpcjs_test.go) run as
// child processes speaking one protocol (testdata/ccore_client.py describes it), driven here.

// interopSplitSpecs are what every such client must follow, in the permissive namespace (the
// clients reach the plain-text xDS server): a 1:0 split, a flip of all the weight to the other
// backend, a 30:10 split (its weights summing to other than 100, and its shares checked), and a
// split by header. Object names start with prefix, and the
// backends take the addresses first..first+4. start starts a client of a Service as a
// ServiceAccount. Two specs, so that a refused split does not hide a refused header match.
func interopSplitSpecs(prefix string, first int, start func(service, serviceAccount string) *interopClient) {
	ns := permissiveNamespace
	n := func(s string) string { return prefix + "-" + s }
	It("split", func() {
		o.service(ns, n("web"), plainBackend(n("web"), first))
		o.service(ns, n("web-v1"), plainBackend(n("web-v1"), first+1))
		o.service(ns, n("web-v2"), plainBackend(n("web-v2"), first+2))
		c := start(n("web"), n("client"))
		// Without a split, the apex's own endpoints answer.
		c.waitOnly(n("web"), nil)

		// 1:0: everything to v1, v2 on the standby route.
		split := &hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n("web")},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: n("web"), Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: n("web-v1"), Weight: 1}, {Service: n("web-v2"), Weight: 0},
			}},
		}
		o.create(split)
		c.waitOnly(n("web-v1"), nil)
		// The flip: all the weight to v2, then a real split.
		o.setWeights(split, 0, 1)
		c.waitOnly(n("web-v2"), nil)
		// Weights that do not sum to 100: what old clients refused without total_weight.
		o.setWeights(split, 30, 10)
		c.waitSpread([]string{n("web-v1"), n("web-v2")}, nil)
		counts, err := c.calls(1000, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(grpcxds.CheckShares(counts, map[string]float64{n("web-v1"): 30, n("web-v2"): 10})).To(Succeed())
	})

	// A split by header (a regex, as SMI's are): only calls whose x-canary matches go to the
	// canary, the others stay on the apex.
	It("header match", func() {
		o.create(&hub.HTTPRouteGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n("canary-users")},
			Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{
				Name: "canary", Headers: map[string]string{"x-canary": "y.s"},
			}}},
		})
		o.service(ns, n("api"), plainBackend(n("api"), first+3))
		o.service(ns, n("api-canary"), plainBackend(n("api-canary"), first+4))
		o.create(&hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n("api")},
			Spec: splitv1alpha4.TrafficSplitSpec{
				Service:  n("api"),
				Matches:  []corev1.TypedLocalObjectReference{{APIGroup: ptr.To(smi.SpecsGroup), Kind: smi.HTTPRouteGroupKind, Name: n("canary-users")}},
				Backends: []splitv1alpha4.TrafficSplitBackend{{Service: n("api-canary"), Weight: 1}},
			},
		})
		c := start(n("api"), n("api-client"))
		c.waitOnly(n("api-canary"), map[string]string{"x-canary": "yes"})
		c.waitOnly(n("api"), map[string]string{"x-canary": "no"})
		c.waitOnly(n("api"), nil)
	})
}

// ensureNamespace creates the namespace unless it exists: the permissive operator programs one
// namespace only, which several tests use.
func (o *operator) ensureNamespace(name string) {
	GinkgoHelper()
	Expect(testenv.EnsureNamespace(context.Background(), o.client, name)).To(Succeed())
}

// interopCommand is how to run one kind of client or server: the command (the test adds its
// arguments last), its environment beyond ours and GRPC_XDS_BOOTSTRAP, and what it needs in its
// bootstrap beyond what grpc-go's has, if anything.
type interopCommand struct {
	name      string
	args      []string
	env       []string
	bootstrap func([]byte) ([]byte, error)
}

// interopClient is a running client (one channel to one xds:/// target) or server.
type interopClient struct {
	name   string
	out    *bufio.Reader
	in     io.Writer
	stderr *lockedBuffer
}

// startInterop starts a client of the Service's port 80, running as ServiceAccount serviceAccount
// of namespace, with the bootstrap a grpc-go client gets (and command.bootstrap's additions).
func (o *operator) startInterop(command interopCommand, namespace, service, serviceAccount string) *interopClient {
	GinkgoHelper()
	return startInteropProcess(command, o.clientBootstrap(namespace, serviceAccount),
		"client of "+service, fmt.Sprintf("xds:///%s.%s.svc.cluster.local:80", service, namespace))
}

// checkInteropSource is checkTrafficTarget with command's clients (startInterop's), which must
// take mutual TLS from the Cluster, calling a grpc-go xDS-enabled server on
// netns.Addr(i):backendPort, in namespace ns (created unless it exists).
func (o *operator) checkInteropSource(ns string, command interopCommand, i int) {
	GinkgoHelper()
	o.ensureNamespace(ns)
	o.checkTrafficTarget(ns, o.xdsBackend(ns, "vault", i), func(namespace, service, serviceAccount string) func() (grpcxds.Reply, error) {
		return o.startInterop(command, namespace, service, serviceAccount).call
	})
}

// startInteropServer starts an xDS-enabled server answering as name, running as ServiceAccount
// namespace/name on netns.Addr(i):backendPort (its Pod too: runsAs), with the bootstrap a grpc-go
// xDS-enabled server gets (and command.bootstrap's additions), and returns its address and the
// process. Nothing says when it serves (C-core's Python API has no serving status): calls tell.
func (o *operator) startInteropServer(command interopCommand, namespace, name string, i int) (string, *interopClient) {
	GinkgoHelper()
	o.runsAs(namespace, name, i)
	p := startInteropProcess(command, o.serverBootstrap(namespace, name), "server "+name, name, netns.HostPort(i, backendPort))
	return netns.Addr(i).String(), p
}

// startInteropProcess runs command with args and the bootstrap (and command.bootstrap's
// additions), and reads its first line, which says its version; what names it in the logs.
func startInteropProcess(command interopCommand, content []byte, what string, args ...string) *interopClient {
	GinkgoHelper()
	bootstrap := filepath.Join(GinkgoT().TempDir(), "bootstrap.json")
	if command.bootstrap != nil {
		var err error
		content, err = command.bootstrap(content)
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(os.WriteFile(bootstrap, content, 0o600)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	args = append(command.args[1:len(command.args):len(command.args)], args...)
	cmd := exec.CommandContext(ctx, command.args[0], args...)
	cmd.Env = append(append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+bootstrap), command.env...)
	stdin, err := cmd.StdinPipe()
	Expect(err).NotTo(HaveOccurred())
	stdout, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	c := &interopClient{name: command.name, out: bufio.NewReader(stdout), in: stdin, stderr: &lockedBuffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		Expect(err).NotTo(HaveOccurred())
	}
	DeferCleanup(func() {
		_ = stdin.Close() // the script ends at the end of its input
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
		}
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Printf("%s %s, its log (the end):\n%s\n", c.name, what, c.stderr.tail(6000))
		}
	})
	var hello struct{ Version string }
	Expect(c.readLine(&hello)).To(Succeed(), "%s %s: %s", c.name, what, c.stderr.tail(3000))
	GinkgoWriter.Printf("%s %s: %s\n", c.name, what, hello.Version)
	return c
}

// calls makes n calls with the metadata and returns how many each backend answered, plus the
// first error.
func (c *interopClient) calls(n int, metadata map[string]string) (map[string]int, error) {
	replies, errs, err := c.replies(n, metadata)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, r := range replies {
		counts[r.Backend]++
	}
	if len(errs) > 0 {
		return counts, fmt.Errorf("%d of %d calls failed, the first: %w", len(errs), n, errs[0])
	}
	return counts, nil
}

// call makes one call, as grpcxds.Call does: the reply, or the call's gRPC status.
func (c *interopClient) call() (grpcxds.Reply, error) {
	replies, errs, err := c.replies(1, nil)
	switch {
	case err != nil:
		return grpcxds.Reply{}, err
	case len(errs) > 0:
		return grpcxds.Reply{}, errs[0]
	}
	return replies[0], nil
}

// replies makes n calls with the metadata and returns the replies and the calls' errors, as gRPC
// statuses; err is about the client itself.
func (c *interopClient) replies(n int, metadata map[string]string) (replies []grpcxds.Reply, errs []error, err error) {
	req, _ := json.Marshal(map[string]any{"calls": n, "metadata": metadata})
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return nil, nil, err
	}
	var resp struct {
		Replies []string
		Errors  []string
	}
	if err := c.readLine(&resp); err != nil {
		return nil, nil, err
	}
	for _, r := range resp.Replies {
		raw, err := base64.StdEncoding.DecodeString(r)
		if err != nil {
			return nil, nil, err
		}
		var reply testpb.SimpleResponse
		if err := proto.Unmarshal(raw, &reply); err != nil {
			return nil, nil, err
		}
		replies = append(replies, grpcxds.Reply{Backend: reply.GetServerId(), Addr: reply.GetHostname(), ClientIdentity: reply.GetUsername()})
	}
	for _, e := range resp.Errors {
		// "PERMISSION_DENIED: details": the code's name, as JSON spells it.
		name, details, _ := strings.Cut(e, ": ")
		var code codes.Code
		if err := code.UnmarshalJSON([]byte(strconv.Quote(name))); err != nil {
			return nil, nil, fmt.Errorf("the %s client's error %q: %w", c.name, e, err)
		}
		errs = append(errs, status.Error(code, details))
	}
	return replies, errs, nil
}

func (c *interopClient) readLine(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the %s client's answer: %w", c.name, err)
	}
	return json.Unmarshal(line, v)
}

// waitOnly waits until 50 calls in a row land on name.
func (c *interopClient) waitOnly(name string, metadata map[string]string) {
	GinkgoHelper()
	Eventually(func() error {
		counts, err := c.calls(50, metadata)
		if err != nil || counts[name] != 50 {
			return fmt.Errorf("%s calls (metadata %v) spread as %v (error %v), want all on %s", c.name, metadata, counts, err, name)
		}
		return nil
	}).Within(time.Minute).ProbeEvery(100 * time.Millisecond).Should(Succeed())
}

// waitSpread waits until 100 calls reach every one of names, and only them.
func (c *interopClient) waitSpread(names []string, metadata map[string]string) {
	GinkgoHelper()
	Eventually(func() error {
		counts, err := c.calls(100, metadata)
		if err != nil {
			return err
		}
		total := 0
		for _, n := range names {
			if counts[n] == 0 {
				return fmt.Errorf("%s calls spread as %v, want some on each of %v", c.name, counts, names)
			}
			total += counts[n]
		}
		if total != 100 {
			return fmt.Errorf("%s calls spread as %v, want all on %v", c.name, counts, names)
		}
		return nil
	}).Within(time.Minute).ProbeEvery(100 * time.Millisecond).Should(Succeed())
}

// lockedBuffer collects a process's stderr, written by exec's copier while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf[max(0, len(b.buf)-n):])
}
