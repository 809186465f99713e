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
	"strings"
	"sync"
	"testing"
	"time"

	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
)

// debianPython is Debian's interpreter, the one that sees python3-grpcio (a pyenv python3 first
// on the PATH does not).
const debianPython = "/usr/bin/python3"

// TestCCoreClientFollowsSplits runs gRPC C-core's xDS client (Debian bookworm's python3-grpcio,
// C-core 1.51, through testdata/ccore_client.py) against the operator: a 1:0 split, a flip of
// all the weight to the other backend, and a split by header. C-core 1.51 refuses (NACKs)
// weighted_clusters without a total_weight equal to their sum and header matchers written as
// string_match, and then keeps its last good route configuration: without the translator's
// care the traffic would stay where it was, which is what this test would see.
//
// C-core 1.51 knows no "tls" channel credentials in its bootstrap (gRFC A65 came later), so it
// can only reach an xDS server that serves plain text: the permissive operator's. See the
// README's support matrix.
func TestCCoreClientFollowsSplits(t *testing.T) {
	o := start(t)
	requireCCore(t)
	ns := permissiveNamespace
	o.ensureNamespace(t, ns)
	// Two subtests, so that a refused split does not hide a refused header match.
	t.Run("split", func(t *testing.T) {
		o.service(t, ns, "cc-web", plainBackend(t, "cc-web", 11))
		o.service(t, ns, "cc-web-v1", plainBackend(t, "cc-web-v1", 12))
		o.service(t, ns, "cc-web-v2", plainBackend(t, "cc-web-v2", 13))
		c := o.startCCore(t, ns, "cc-web", "ccore-client")
		// Without a split, the apex's own endpoints answer.
		c.waitOnly(t, "cc-web", nil)

		// 1:0: everything to v1, v2 on the standby route.
		split := &hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cc-web"},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: "cc-web", Backends: []splitv1alpha4.TrafficSplitBackend{
				{Service: "cc-web-v1", Weight: 1}, {Service: "cc-web-v2", Weight: 0},
			}},
		}
		o.create(t, split)
		c.waitOnly(t, "cc-web-v1", nil)
		// The flip: all the weight to v2, then a real split.
		o.setWeights(t, split, 0, 1)
		c.waitOnly(t, "cc-web-v2", nil)
		o.setWeights(t, split, 50, 50)
		c.waitSpread(t, []string{"cc-web-v1", "cc-web-v2"}, nil)
	})

	// A split by header (a regex, as SMI's are): only calls whose x-canary matches go to the
	// canary, the others stay on the apex.
	t.Run("header match", func(t *testing.T) {
		o.create(t, &hub.HTTPRouteGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cc-canary-users"},
			Spec: specsv1alpha4.HTTPRouteGroupSpec{Matches: []specsv1alpha4.HTTPMatch{{
				Name: "canary", Headers: map[string]string{"x-canary": "y.s"},
			}}},
		})
		o.service(t, ns, "cc-api", plainBackend(t, "cc-api", 14))
		o.service(t, ns, "cc-api-canary", plainBackend(t, "cc-api-canary", 15))
		o.create(t, &hub.TrafficSplit{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cc-api"},
			Spec: splitv1alpha4.TrafficSplitSpec{
				Service:  "cc-api",
				Matches:  []corev1.TypedLocalObjectReference{{APIGroup: ptr.To(smi.SpecsGroup), Kind: smi.HTTPRouteGroupKind, Name: "cc-canary-users"}},
				Backends: []splitv1alpha4.TrafficSplitBackend{{Service: "cc-api-canary", Weight: 1}},
			},
		})
		c := o.startCCore(t, ns, "cc-api", "ccore-api-client")
		c.waitOnly(t, "cc-api-canary", map[string]string{"x-canary": "yes"})
		c.waitOnly(t, "cc-api", map[string]string{"x-canary": "no"})
		c.waitOnly(t, "cc-api", nil)
	})
}

// plainBackend starts a gRPC backend answering as name on netns.Addr(i):backendPort in plain text:
// the C-core client's channel has insecure credentials (xDS security in C-core needs its
// experimental XdsCredentials), so it ignores the clusters' TLS, as a permissive mesh's
// workloads outside mutual TLS do.
func plainBackend(t *testing.T, name string, i int) string {
	t.Helper()
	b, err := grpcxds.StartBackend(name, netns.HostPort(i, backendPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return netns.Addr(i).String()
}

// requireCCore skips the test when Debian's python3-grpcio is not installed (hack/interop-deps.sh
// installs it, as `make test` does), unless SMI_E2E_NETNS_STRICT is set: CI must run it.
func requireCCore(t *testing.T) {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import grpc; print(grpc.__version__)").CombinedOutput()
	if err == nil {
		t.Logf("gRPC C-core (python3-grpcio) %s", strings.TrimSpace(string(out)))
		return
	}
	msg := fmt.Sprintf("gRPC C-core is not available: %s -c 'import grpc': %v: %s; run hack/interop-deps.sh (make interop-deps) as root",
		debianPython, err, strings.TrimSpace(string(out)))
	if os.Getenv(netns.StrictEnv) != "" {
		t.Fatalf("%s is set: %s", netns.StrictEnv, msg)
	}
	t.Skip(msg)
}

// ensureNamespace creates the namespace unless it exists: the permissive operator programs one
// namespace only, which several tests use.
func (o *operator) ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := o.client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// ccoreClient is a running testdata/ccore_client.py: one C-core channel to one xds:/// target.
type ccoreClient struct {
	out    *bufio.Reader
	in     io.Writer
	stderr *lockedBuffer
}

// startCCore starts a C-core client of the Service's port 80, running as ServiceAccount
// serviceAccount of namespace, with the same bootstrap a grpc-go client gets.
func (o *operator) startCCore(t *testing.T, namespace, service, serviceAccount string) *ccoreClient {
	t.Helper()
	bootstrap := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := os.WriteFile(bootstrap, o.clientBootstrap(t, namespace, serviceAccount), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, debianPython, "testdata/ccore_client.py",
		fmt.Sprintf("xds:///%s.%s.svc.cluster.local:80", service, namespace))
	// C-core logs a refused resource (the NACK and its reason) at INFO through its xds_client
	// tracer: kept, and shown when the test fails, as the first clue.
	cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+bootstrap, "GRPC_VERBOSITY=INFO", "GRPC_TRACE=xds_client")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &ccoreClient{out: bufio.NewReader(stdout), in: stdin, stderr: &lockedBuffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // the script ends at the end of its input
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
		}
		if t.Failed() {
			t.Logf("C-core client of %s, its log (the end):\n%s", service, c.stderr.tail(6000))
		}
	})
	var hello struct{ Version string }
	if err := c.readLine(&hello); err != nil {
		t.Fatalf("C-core client: %v\n%s", err, c.stderr.tail(3000))
	}
	return c
}

// calls makes n calls with the metadata and returns how many each backend answered, plus the
// first error.
func (c *ccoreClient) calls(n int, metadata map[string]string) (map[string]int, error) {
	req, _ := json.Marshal(map[string]any{"calls": n, "metadata": metadata})
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return nil, err
	}
	var resp struct {
		Replies []string
		Errors  []string
	}
	if err := c.readLine(&resp); err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, r := range resp.Replies {
		raw, err := base64.StdEncoding.DecodeString(r)
		if err != nil {
			return nil, err
		}
		var reply testpb.SimpleResponse
		if err := proto.Unmarshal(raw, &reply); err != nil {
			return nil, err
		}
		counts[reply.GetServerId()]++
	}
	if len(resp.Errors) > 0 {
		return counts, fmt.Errorf("%d of %d calls failed, the first: %s", len(resp.Errors), n, resp.Errors[0])
	}
	return counts, nil
}

func (c *ccoreClient) readLine(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the C-core client's answer: %w", err)
	}
	return json.Unmarshal(line, v)
}

// waitOnly waits until 50 calls in a row land on name.
func (c *ccoreClient) waitOnly(t *testing.T, name string, metadata map[string]string) {
	t.Helper()
	eventually(t, time.Minute, 100*time.Millisecond, func() error {
		counts, err := c.calls(50, metadata)
		if err != nil || counts[name] != 50 {
			return fmt.Errorf("C-core calls (metadata %v) spread as %v (error %v), want all on %s", metadata, counts, err, name)
		}
		return nil
	})
}

// waitSpread waits until 100 calls reach every one of names, and only them.
func (c *ccoreClient) waitSpread(t *testing.T, names []string, metadata map[string]string) {
	t.Helper()
	eventually(t, time.Minute, 100*time.Millisecond, func() error {
		counts, err := c.calls(100, metadata)
		if err != nil {
			return err
		}
		total := 0
		for _, n := range names {
			if counts[n] == 0 {
				return fmt.Errorf("C-core calls spread as %v, want some on each of %v", counts, names)
			}
			total += counts[n]
		}
		if total != 100 {
			return fmt.Errorf("C-core calls spread as %v, want all on %v", counts, names)
		}
		return nil
	})
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
