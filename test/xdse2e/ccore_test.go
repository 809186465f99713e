package xdse2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/smi-operator/smi-operator/test/grpcxds"
	"github.com/smi-operator/smi-operator/test/netns"
)

// debianPython is Debian's interpreter, the one that sees python3-grpcio (a pyenv python3 first
// on the PATH does not).
const debianPython = "/usr/bin/python3"

// ccoreSpecs run gRPC C-core's clients and servers against the operator, when Debian's
// python3-grpcio is installed (requireCCore).
func ccoreSpecs() {
	BeforeEach(requireCCore)
	Describe("a C-core client follows splits", ccoreClientFollowsSplits)
	It("a C-core xDS-enabled server enforces a TrafficTarget", ccoreServerEnforcesTrafficTarget)
	It("a C-core client is a TrafficTarget's source", ccoreClientIsATrafficTargetSource)
}

// ccoreClientFollowsSplits runs gRPC C-core's xDS client (Debian bookworm's python3-grpcio,
// C-core 1.51, through testdata/ccore_client.py) against the operator: a 1:0 split, a flip of
// all the weight to the other backend, and a split by header. C-core 1.51 refuses (NACKs)
// weighted_clusters without a total_weight equal to their sum and header matchers written as
// string_match, and then keeps its last good route configuration: without the translator's
// care the traffic would stay where it was, which is what this test would see.
//
// C-core 1.51 knows no "tls" channel credentials in its bootstrap (gRFC A65 came later), so it
// can only reach an xDS server that serves plain text: the permissive operator's. See the
// README's support matrix.
func ccoreClientFollowsSplits() {
	ns := permissiveNamespace
	BeforeEach(func() { o.ensureNamespace(ns) })
	interopSplitSpecs("cc", 11, func(service, serviceAccount string) *interopClient {
		return o.startInterop(ccore("testdata/ccore_client.py"), ns, service, serviceAccount)
	})
}

// ccoreServerNamespace is where ccoreServerEnforcesTrafficTarget runs: one of
// plainEnforcingNamespaces.
const ccoreServerNamespace = "plaintext-ccore"

// ccoreServerEnforcesTrafficTarget runs trafficTargetOnXDSServer's check on gRPC
// C-core's xDS-enabled server (python3-grpcio 1.51, grpc.server(xds=True) with xDS server
// credentials, through testdata/ccore_server.py): it takes mutual TLS from the operator's
// Listener (certificates from a file_watcher certificate provider) and enforces its RBAC, so
// that only the TrafficTarget's source, a grpc-go client, gets through.
//
// C-core 1.51 reaches only a plain-text xDS server, and the permissive operator's shadows RBAC:
// the server runs in a namespace of the plain-text enforcing operator.
func ccoreServerEnforcesTrafficTarget() {
	ns := ccoreServerNamespace
	o.ensureNamespace(ns)
	vault, _ := o.startInteropServer(ccore("testdata/ccore_server.py"), ns, "vault", 20)
	o.checkTrafficTarget(ns, vault, o.grpcGoCaller)
}

// ccoreClientNamespace is where ccoreClientIsATrafficTargetSource runs: one of
// plainEnforcingNamespaces.
const ccoreClientNamespace = "plaintext-ccore-client"

// ccoreClientIsATrafficTargetSource runs trafficTargetOnXDSServer's check with gRPC
// C-core's xDS clients (python3-grpcio 1.51, testdata/ccore_client.py with xDS channel
// credentials, grpc.xds_channel_credentials) calling a grpc-go xDS-enabled server: they take
// mutual TLS from the operator's Cluster (their certificates from the bootstrap's file_watcher
// certificate provider), and the server lets the one running as the TrafficTarget's source
// through, seen as its SPIFFE ID, while the same client running as another ServiceAccount stays
// denied.
//
// As for C-core's server, the namespace is one of the plain-text enforcing operator's.
func ccoreClientIsATrafficTargetSource() {
	o.checkInteropSource(ccoreClientNamespace, ccore("testdata/ccore_client.py", "--xds-credentials"), 17)
}

// ccore runs a script of testdata, with args before the test's own, with Debian's python3-grpcio.
func ccore(script string, args ...string) interopCommand {
	return interopCommand{
		name: "C-core",
		args: append([]string{debianPython, script}, args...),
		// C-core logs a refused resource (the NACK and its reason) at INFO through its
		// xds_client tracer, and why a server does not serve through xds_server_config_fetcher:
		// kept, and shown when the test fails, as the first clue.
		env: []string{"GRPC_VERBOSITY=INFO", "GRPC_TRACE=xds_client,xds_server_config_fetcher"},
	}
}

// plainBackend starts a gRPC backend answering as name on netns.Addr(i):backendPort in plain text:
// testInteropSplits's clients have insecure channel credentials, so they ignore the clusters'
// TLS, as a permissive mesh's workloads outside mutual TLS do.
func plainBackend(name string, i int) string {
	GinkgoHelper()
	b, err := grpcxds.StartBackend(name, netns.HostPort(i, backendPort))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(b.Stop)
	return netns.Addr(i).String()
}

// requireCCore skips the spec when Debian's python3-grpcio is not installed (hack/interop-deps.sh
// installs it, as `make test` does), unless SMI_E2E_NETNS_STRICT is set: CI must run it.
func requireCCore() {
	GinkgoHelper()
	out, err := exec.Command(debianPython, "-c", "import grpc; print(grpc.__version__)").CombinedOutput()
	if err == nil {
		GinkgoWriter.Printf("gRPC C-core (python3-grpcio) %s\n", strings.TrimSpace(string(out)))
		return
	}
	msg := fmt.Sprintf("gRPC C-core is not available: %s -c 'import grpc': %v: %s; run hack/interop-deps.sh (make interop-deps) as root",
		debianPython, err, strings.TrimSpace(string(out)))
	Expect(os.Getenv(netns.StrictEnv)).To(BeEmpty(), "%s is set: %s", netns.StrictEnv, msg)
	Skip(msg)
}
