package xdse2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/smi-operator/smi-operator/test/netns"
)

// grpcJSDir is where hack/interop-deps.sh installs testdata/grpc-js/package-lock.json (npm ci):
// $XDG_CACHE_HOME/smi-operator/interop/grpc-js, ~/.cache/... without it.
func grpcJSDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "smi-operator", "interop", "grpc-js"), nil
}

// grpcJSSpecs run grpc-js's clients and servers against the operator, when node and the pinned
// packages are installed (requireGRPCJS).
func grpcJSSpecs() {
	Describe("a grpc-js client follows splits", grpcJSClientFollowsSplits)
	Describe("a grpc-js xDS-enabled server enforces a TrafficTarget", grpcJSServerEnforcesTrafficTarget)
	It("a grpc-js client is a TrafficTarget's source", grpcJSClientIsATrafficTargetSource)
}

// grpcJSClientFollowsSplits runs grpc-js's xDS client (@grpc/grpc-js 1.14.7 and
// @grpc/grpc-js-xds 1.14.1, pinned in testdata/grpc-js, through testdata/grpc-js/client.js)
// against the operator, as ccoreClientFollowsSplits runs C-core: a 1:0 split, a flip, a
// weighted split and a split by header.
//
// grpc-js-xds 1.14.1 knows only "google_default" and "insecure" channel credentials in its
// bootstrap (no "tls", gRFC A65), so it too reaches only the permissive operator's plain-text
// xDS server. See the README's support matrix.
func grpcJSClientFollowsSplits() {
	var node, dir string
	BeforeEach(func() {
		node, dir = requireGRPCJS()
		o.ensureNamespace(permissiveNamespace)
	})
	interopSplitSpecs("js", 16, func(service, serviceAccount string) *interopClient {
		return o.startInterop(grpcJS(node, dir, "testdata/grpc-js/client.js"), permissiveNamespace, service, serviceAccount)
	})
}

// grpcJSServerNamespace is where grpcJSServerEnforcesTrafficTarget runs: one of
// plainEnforcingNamespaces.
const grpcJSServerNamespace = "plaintext-grpc-js"

// grpcJSServerEnforcesTrafficTarget runs trafficTargetOnXDSServer's check on grpc-js's
// xDS-enabled server (@grpc/grpc-js-xds 1.14.1's XdsServer with XdsServerCredentials, through
// testdata/grpc-js/server.js), as ccoreServerEnforcesTrafficTarget does on C-core's, in a
// namespace of the plain-text enforcing operator.
func grpcJSServerEnforcesTrafficTarget() {
	var node, dir string
	ns := grpcJSServerNamespace
	BeforeEach(func() {
		node, dir = requireGRPCJS()
		o.ensureNamespace(ns)
	})
	// grpc-js-xds 1.14.1 registers its RBAC filter only with GRPC_XDS_EXPERIMENTAL_RBAC=true.
	// Without it, the server refuses (NACKs) the Listener, whose RBAC filter is not optional,
	// and does not serve: it fails closed rather than serving without its access rules.
	It("without GRPC_XDS_EXPERIMENTAL_RBAC, fails closed", func() {
		addr, server := o.startInteropServer(grpcJS(node, dir, "testdata/grpc-js/server.js"), ns, "vault", 18)
		Eventually(func() error {
			if !strings.Contains(server.stderr.tail(1<<20), "envoy.filters.http.rbac filter validation failed") {
				return errors.New("the grpc-js server has not refused its Listener's RBAC filter")
			}
			return nil
		}).Within(time.Minute).ProbeEvery(100 * time.Millisecond).Should(Succeed())
		Expect(server.stderr.tail(1<<20)).NotTo(ContainSubstring("serving status: OK"), "the grpc-js server serves")
		// It listens only once it serves (and then on the port of every address: see the
		// README's support matrix).
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(backendPort)), time.Second)
		if err == nil {
			conn.Close()
		}
		Expect(err).To(HaveOccurred(), "the grpc-js server accepts connections")
	})
	It("with GRPC_XDS_EXPERIMENTAL_RBAC", func() {
		server := grpcJS(node, dir, "testdata/grpc-js/server.js")
		server.env = append(server.env, "GRPC_XDS_EXPERIMENTAL_RBAC=true")
		vault, _ := o.startInteropServer(server, ns, "vault", 19)
		o.checkTrafficTarget(ns, vault, o.grpcGoCaller)
	})
}

// grpcJSClientNamespace is where grpcJSClientIsATrafficTargetSource runs: one of
// plainEnforcingNamespaces.
const grpcJSClientNamespace = "plaintext-grpc-js-client"

// grpcJSClientIsATrafficTargetSource runs ccoreClientIsATrafficTargetSource's check with
// grpc-js's xDS clients (testdata/grpc-js/client.js with @grpc/grpc-js-xds's
// XdsChannelCredentials), in a namespace of the plain-text enforcing operator.
func grpcJSClientIsATrafficTargetSource() {
	node, dir := requireGRPCJS()
	o.checkInteropSource(grpcJSClientNamespace, grpcJS(node, dir, "testdata/grpc-js/client.js", "--xds-credentials"), 18)
}

// grpcJS runs a script of testdata/grpc-js, with args before the test's own, with node and the
// installed packages.
func grpcJS(node, dir, script string, args ...string) interopCommand {
	return interopCommand{
		name: "grpc-js",
		args: append([]string{node, script}, args...),
		// The tracers log a refused resource (the NACK and its reason), a bootstrap it cannot
		// read, and why a server does not serve: kept, and shown when the test fails, as the
		// first clue.
		env:       []string{"NODE_PATH=" + filepath.Join(dir, "node_modules"), "GRPC_VERBOSITY=DEBUG", "GRPC_TRACE=xds_client,xds_resolver,xds_server"},
		bootstrap: forGRPCJS,
	}
}

// requireGRPCJS returns node and the directory holding the installed packages, or skips the spec
// when either is missing (hack/interop-deps.sh installs the packages, as `make test` does), unless
// SMI_E2E_NETNS_STRICT is set: CI must run it.
func requireGRPCJS() (node, dir string) {
	GinkgoHelper()
	fail := func(msg string) {
		msg = "grpc-js is not available: " + msg + "; run hack/interop-deps.sh (make interop-deps)"
		Expect(os.Getenv(netns.StrictEnv)).To(BeEmpty(), "%s is set: %s", netns.StrictEnv, msg)
		Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		fail(err.Error())
	}
	dir, err = grpcJSDir()
	if err != nil {
		fail(err.Error())
	}
	var versions []string
	for _, pkg := range []string{"@grpc/grpc-js", "@grpc/grpc-js-xds"} {
		raw, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
		if err != nil {
			fail(err.Error())
		}
		var p struct{ Version string }
		if err := json.Unmarshal(raw, &p); err != nil {
			fail(fmt.Sprintf("%s's package.json: %v", pkg, err))
		}
		versions = append(versions, pkg+" "+p.Version)
	}
	GinkgoWriter.Printf("grpc-js: %v in %s, run by %s\n", versions, dir, node)
	return node, dir
}

// forGRPCJS adds to a bootstrap what grpc-js-xds 1.14.1 requires and grpc-go and C-core take as
// optional: node.locality (else "locality field missing in node element") and a file_watcher
// certificate provider's refresh_interval (else "refresh_interval: expected string"; gRFC A29's
// default, 10 minutes, is written). Without them it reads no bootstrap and every call fails.
func forGRPCJS(bootstrap []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(bootstrap, &doc); err != nil {
		return nil, err
	}
	node, ok := doc["node"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("bootstrap without a node: %s", bootstrap)
	}
	if _, ok := node["locality"]; !ok {
		node["locality"] = map[string]any{}
	}
	providers, _ := doc["certificate_providers"].(map[string]any)
	for name, p := range providers {
		config, ok := p.(map[string]any)["config"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("bootstrap: certificate provider %q without a config", name)
		}
		if _, ok := config["refresh_interval"]; !ok {
			config["refresh_interval"] = "600s"
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}
