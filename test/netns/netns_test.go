package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smi-operator/smi-operator/test/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

// helperEnv makes TestHelper do something (print, exit, wait) instead of skipping: the tests
// below run this binary again, from scratch, to watch Run from outside.
const helperEnv = "NETNS_TEST_HELPER"

func TestHelper(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("only runs as a child of the tests below")
	case "exit":
		fmt.Printf("marker=%s\n", os.Getenv(netns.MarkerEnv))
		os.Exit(7)
	case "wait":
		fmt.Printf("marker=%s\n", os.Getenv(netns.MarkerEnv))
		time.Sleep(time.Minute)
	}
}

func TestAddressesAreUsableInside(t *testing.T) {
	netns.Require(t)
	if got := netns.Addr(2).String(); got != "10.200.0.2" {
		t.Fatalf("Addr(2) = %s", got)
	}
	l, err := net.Listen("tcp", netns.HostPort(2, 0))
	if err != nil {
		t.Fatalf("listening on %s: %v", netns.Addr(2), err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", l.Addr(), err)
	}
	defer c.Close()
	if b, err := io.ReadAll(c); err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v", b, err)
	}

	// The namespace is ours: it is named after the parent process, and the host's interfaces are
	// not in it (only lo).
	out, err := exec.Command("ip", "netns", "identify", strconv.Itoa(os.Getpid())).Output()
	if err != nil {
		t.Fatalf("ip netns identify: %v", err)
	}
	if name := strings.TrimSpace(string(out)); name != os.Getenv(netns.MarkerEnv) || !strings.HasPrefix(name, "smi-e2e-") {
		t.Fatalf("running in namespace %q, marker says %q", name, os.Getenv(netns.MarkerEnv))
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Fatalf("interfaces inside: %v, want only lo", ifaces)
	}
}

func TestAPIServerFlags(t *testing.T) {
	flags := netns.APIServerFlags()
	if flags["advertise-address"] != "10.200.0.1" || flags["service-cluster-ip-range"] != "10.96.0.0/12" || len(flags) != 2 {
		t.Fatalf("APIServerFlags() = %v", flags)
	}
	flags["x"] = "y"
	if _, ok := netns.APIServerFlags()["x"]; ok {
		t.Fatal("APIServerFlags returns a shared map")
	}
}

// startOutside runs this test binary again as a fresh, outside process (no marker), so it makes a
// namespace of its own, with TestHelper in mode; it returns the command and its first output line.
func startOutside(t *testing.T, mode string) (*exec.Cmd, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, self, "-test.run=^TestHelper$", "-test.count=1")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, netns.MarkerEnv+"=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, helperEnv+"="+mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's output: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd, strings.TrimSpace(line)
}

func namespaceExists(t *testing.T, name string) bool {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func TestRunPassesTheExitCodeAndDeletesTheNamespace(t *testing.T) {
	netns.Require(t) // root with ip: the nested run can make a namespace too
	cmd, line := startOutside(t, "exit")
	name := "smi-e2e-" + strconv.Itoa(cmd.Process.Pid)
	if line != "marker="+name {
		t.Fatalf("the helper printed %q, want marker=%s", line, name)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("exit: %v, want exit status 7", err)
	}
	if namespaceExists(t, name) {
		t.Fatalf("namespace %s is still there", name)
	}
}

func TestRunDeletesTheNamespaceOnSIGTERM(t *testing.T) {
	netns.Require(t)
	cmd, line := startOutside(t, "wait")
	name := "smi-e2e-" + strconv.Itoa(cmd.Process.Pid)
	if line != "marker="+name {
		t.Fatalf("the helper printed %q, want marker=%s", line, name)
	}
	if !namespaceExists(t, name) {
		t.Fatalf("namespace %s does not exist while its tests run", name)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit: %v, want exit status %d", err, 128+int(syscall.SIGTERM))
	}
	if namespaceExists(t, name) {
		t.Fatalf("namespace %s is still there after SIGTERM", name)
	}
}
