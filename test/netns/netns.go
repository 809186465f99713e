// Package netns runs a test binary inside a fresh Linux network namespace of its own, with a
// handful of non-loopback addresses (10.200.0.1 … 10.200.0.20) on its loopback interface.
//
// Why: end-to-end tests of the xDS control plane need real endpoints in EndpointSlices, and the
// API server rejects loopback addresses (127.0.0.0/8) there. Addresses on lo inside a private
// namespace are reachable only from that namespace, so tests can listen on them, put them in
// EndpointSlices and send real traffic without touching the host's network or colliding with
// another test run. Nothing leaves the namespace.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { netns.Main(m) }
//
// Outside the namespace (the marker variable unset), running as root with `ip` on the PATH, Main
// creates the namespace smi-e2e-<pid>, brings lo up with the addresses, re-executes the same test
// binary with the same arguments through `ip netns exec`, streams its output, deletes the
// namespace (also when interrupted) and exits with the child's exit code. Inside, it just runs the
// tests. Without root or `ip` the tests run in the host's namespace and every test that calls
// Require skips, saying why.
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const (
	// MarkerEnv is set, to the namespace's name, in the environment of the re-executed test
	// binary. Its presence means "already inside".
	MarkerEnv = "SMI_E2E_NETNS"
	// StrictEnv, when set to a non-empty value, turns a namespace that cannot be created into a
	// failure instead of a skip (for CI machines that must run these tests).
	StrictEnv = "SMI_E2E_NETNS_STRICT"
	// NumAddrs is how many addresses Addr hands out: Addr(1) … Addr(NumAddrs).
	NumAddrs = 20
	// prefix names every namespace this package creates: prefix + pid.
	prefix = "smi-e2e-"
)

// unavailable says why the tests are not inside a namespace ("" when they are, or before Run).
var unavailable string

// Main runs the tests inside a fresh network namespace (see the package comment) and exits with
// their exit code. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit: it returns the exit code of the tests, run inside the namespace
// when possible. m is a *testing.M, or anything whose Run runs the tests (e.g. a wrapper that also
// tears down shared fixtures after m.Run; it runs only in the process inside the namespace).
func Run(m interface{ Run() int }) int {
	if Inside() {
		return m.Run()
	}
	reason := ""
	if os.Geteuid() != 0 {
		reason = fmt.Sprintf("running as uid %d", os.Geteuid())
	} else if _, err := exec.LookPath("ip"); err != nil {
		reason = "`ip` (iproute2) is not on the PATH"
	} else {
		code, err := runInNamespace()
		if err == nil {
			return code
		}
		reason = err.Error()
	}
	if os.Getenv(StrictEnv) != "" {
		fmt.Fprintf(os.Stderr, "netns: %s is set and no network namespace could be made: %s\n", StrictEnv, reason)
		return 1
	}
	unavailable = reason
	return m.Run()
}

// Inside reports whether this process runs inside a namespace made by Run.
func Inside() bool { return os.Getenv(MarkerEnv) != "" }

// Require skips the test unless it runs inside a namespace made by Run. Inside, it checks once that
// the namespace's addresses are really there and fails the test if not.
func Require(t testing.TB) {
	t.Helper()
	if !Inside() {
		reason := unavailable
		if reason == "" {
			reason = "TestMain does not call netns.Main or netns.Run"
		}
		t.Skipf("needs root to create a network namespace: %s", reason)
	}
	if err := checkAddrs(); err != nil {
		t.Fatalf("inside network namespace %s: %v", os.Getenv(MarkerEnv), err)
	}
}

// Addr is the i-th address (1 ≤ i ≤ NumAddrs) on the namespace's lo: 10.200.0.i. Addr(1) is the
// API server's advertise address (APIServerFlags); any address can host any number of listeners
// on different ports.
func Addr(i int) netip.Addr {
	if i < 1 || i > NumAddrs {
		panic(fmt.Sprintf("netns.Addr(%d): only 1..%d exist", i, NumAddrs))
	}
	return netip.AddrFrom4([4]byte{10, 200, 0, byte(i)})
}

// HostPort is "10.200.0.i:port", for net.Listen and for xDS resources.
func HostPort(i int, port uint16) string {
	return netip.AddrPortFrom(Addr(i), port).String()
}

// APIServerFlags are the kube-apiserver flags (testenv.Options.APIServerFlags) for a control plane
// started inside the namespace: an advertise address, because a bare namespace has no default
// route for kube-apiserver to pick one from, and a service range with room for many Services.
// The map is new on every call.
func APIServerFlags() map[string]string {
	return map[string]string{
		"advertise-address":        Addr(1).String(),
		"service-cluster-ip-range": "10.96.0.0/12",
	}
}

var (
	checkOnce sync.Once
	checkErr  error
)

func checkAddrs() error {
	checkOnce.Do(func() {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			checkErr = err
			return
		}
		have := map[netip.Addr]bool{}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				have[p.Addr()] = true
			}
		}
		for i := 1; i <= NumAddrs; i++ {
			if !have[Addr(i)] {
				checkErr = fmt.Errorf("address %s is missing on lo (have %v)", Addr(i), addrs)
				return
			}
		}
	})
	return checkErr
}

// runInNamespace creates the namespace, runs this binary inside and deletes the namespace. The
// error is for a namespace that could not be set up; a failing child is an exit code.
func runInNamespace() (int, error) {
	removeStale()
	name := prefix + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	defer deleteNamespace(name)

	// Interrupts go to the child (it shares our process group, so a terminal's Ctrl-C reaches it
	// anyway); we stay alive until it is gone, then delete the namespace. Registered before the
	// child starts so no signal can kill us between creating and deleting the namespace.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(signals)

	var setup strings.Builder
	setup.WriteString("link set lo up\n")
	for i := 1; i <= NumAddrs; i++ {
		fmt.Fprintf(&setup, "address add %s/32 dev lo\n", Addr(i))
	}
	cmd := exec.Command("ip", "-netns", name, "-batch", "-")
	cmd.Stdin = strings.NewReader(setup.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("setting up lo in %s: %v: %s", name, err, bytes.TrimSpace(out))
	}

	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("locating the test binary: %w", err)
	}
	child := exec.Command("ip", append([]string{"netns", "exec", name, self}, os.Args[1:]...)...)
	child.Env = append(os.Environ(), MarkerEnv+"="+name)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := child.Start(); err != nil {
		return 0, fmt.Errorf("starting %s in %s: %w", self, name, err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case sig := <-signals:
			_ = child.Process.Signal(sig)
		case err := <-done:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0, nil
			case errors.As(err, &exit):
				if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() {
					fmt.Fprintf(os.Stderr, "netns: test binary killed by %v\n", status.Signal())
					return 128 + int(status.Signal()), nil
				}
				return exit.ExitCode(), nil
			default:
				fmt.Fprintf(os.Stderr, "netns: waiting for the test binary: %v\n", err)
				return 1, nil
			}
		}
	}
}

func deleteNamespace(name string) {
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "netns: deleting namespace %s: %v: %s\n", name, err, bytes.TrimSpace(out))
	}
}

var staleName = regexp.MustCompile(`^` + prefix + `(\d+)\b`)

// removeStale deletes namespaces left behind by earlier runs that were killed outright (SIGKILL
// leaves no chance to clean up): those named after a process that no longer exists.
func removeStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		m := staleName.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
			continue
		}
		deleteNamespace(prefix + m[1])
	}
}
