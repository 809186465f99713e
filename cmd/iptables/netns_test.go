package iptables_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/smi-operator/smi-operator/cmd/iptables"
)

// The test binary is also the helper processes the capture test starts inside its network
// namespaces (`ip netns exec`): helperEnv names the role, argsEnv its arguments.
const (
	helperEnv = "SMI_CAPTURE_HELPER"
	argsEnv   = "SMI_CAPTURE_ARGS"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "iptables":
		os.Exit(iptables.Main(strings.Fields(os.Getenv(argsEnv)), os.Stdout, os.Stderr))
	case "listen":
		listen(strings.Fields(os.Getenv(argsEnv)))
	case "dial":
		dial(os.Getenv(argsEnv))
	}
}

// listen serves each "name=network/address" of specs: every connection is answered with one line,
// the name, the connection's local address and, when netfilter redirected it, its original
// destination (SO_ORIGINAL_DST). It prints "ready" once every listener is up.
func listen(specs []string) {
	for _, spec := range specs {
		name, where, _ := strings.Cut(spec, "=")
		network, address, _ := strings.Cut(where, "/")
		lis, err := net.Listen(network, address)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for {
				conn, err := lis.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(conn, "%s local=%s orig=%s\n", name, conn.LocalAddr(), originalDst(conn.(*net.TCPConn)))
				_ = conn.Close()
			}
		}()
	}
	fmt.Println("ready")
	select {}
}

// originalDst is where a redirected connection was going, or "-" when it was not redirected.
func originalDst(c *net.TCPConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return "-"
	}
	const soOriginalDst = 80 // SO_ORIGINAL_DST, and IP6T_SO_ORIGINAL_DST at SOL_IPV6
	out := "-"
	_ = raw.Control(func(fd uintptr) {
		if c.LocalAddr().(*net.TCPAddr).IP.To4() != nil {
			var sa unix.RawSockaddrInet4
			size := uint32(unsafe.Sizeof(sa))
			if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IP, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0); errno == 0 {
				out = net.JoinHostPort(net.IP(sa.Addr[:]).String(), fmt.Sprint(ntohs(sa.Port)))
			}
			return
		}
		var sa unix.RawSockaddrInet6
		size := uint32(unsafe.Sizeof(sa))
		if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IPV6, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0); errno == 0 {
			out = net.JoinHostPort(net.IP(sa.Addr[:]).String(), fmt.Sprint(ntohs(sa.Port)))
		}
	})
	// A connection that was not redirected has no conntrack NAT entry: the kernel answers with
	// the connection's own destination, which says nothing.
	if out == c.LocalAddr().String() {
		return "-"
	}
	return out
}

func ntohs(port uint16) uint16 { return port>>8 | port<<8 }

// dial connects to address and prints the line the listener answers with.
func dial(address string) {
	conn, err := net.DialTimeout("tcp", address, 3*time.Second)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(0)
	}
	line, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(line)
	os.Exit(0)
}

// Addresses of the test's two network namespaces, joined by a veth pair: the pod, whose traffic is
// captured, and a peer outside it. The peer also has otherAddr, in an outbound CIDR the capture
// excludes.
const (
	podAddr, peerAddr, otherAddr = "10.211.0.2", "10.211.0.3", "10.211.1.3"
	podAddr6, peerAddr6          = "fd00:211::2", "fd00:211::3"
)

// capturing are the flags of the test's capture.
const capturing = "--exclude-outbound-ports 9999 --exclude-outbound-cidrs 10.211.1.0/24 --exclude-inbound-ports 9000"

// TestCaptureInANetworkNamespace runs the iptables subcommand in a fresh network namespace with the
// real iptables tools, and sends real connections through its rules: outbound TCP from the pod's
// apps reaches the proxy's outbound port with its original destination, unless it comes from the
// proxy's UID or GID, goes to an excluded port or CIDR, or stays on loopback; inbound TCP to an app
// port reaches the inbound port with its original destination, unless the port is excluded (the
// proxy's own, or by flag); both for IPv4 and IPv6. A second run changes nothing, and --cleanup
// leaves the tables as they were.
func TestCaptureInANetworkNamespace(t *testing.T) {
	requireRootAndTools(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pod, peer := newNamespace(t, "pod"), newNamespace(t, "peer")
	for _, args := range [][]string{
		{"-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", peer},
		{"-n", pod, "addr", "add", podAddr + "/24", "dev", "eth0"},
		{"-n", pod, "addr", "add", podAddr6 + "/64", "dev", "eth0", "nodad"},
		{"-n", peer, "addr", "add", peerAddr + "/24", "dev", "eth0"},
		{"-n", peer, "addr", "add", otherAddr + "/32", "dev", "eth0"},
		{"-n", peer, "addr", "add", peerAddr6 + "/64", "dev", "eth0", "nodad"},
		{"-n", pod, "link", "set", "eth0", "up"},
		{"-n", peer, "link", "set", "eth0", "up"},
		{"-n", pod, "route", "add", "10.211.1.0/24", "dev", "eth0"},
	} {
		run(t, "ip", args...)
	}
	helper := func(ns, role, args string, asUser ...string) *exec.Cmd {
		cmdArgs := append([]string{"netns", "exec", ns}, asUser...)
		cmd := exec.Command("ip", append(cmdArgs, self)...)
		cmd.Env = append(os.Environ(), helperEnv+"="+role, argsEnv+"="+args)
		return cmd
	}
	saved := func() string {
		var out []string
		for _, tool := range []string{"iptables-save", "ip6tables-save"} {
			out = append(out, normalizeSave(runOut(t, "ip", "netns", "exec", pod, tool, "-t", "nat")))
		}
		return strings.Join(out, "")
	}
	capture := func(args string) string {
		out, err := helper(pod, "iptables", args).CombinedOutput()
		if err != nil {
			t.Fatalf("smi-operator iptables %s: %v\n%s", args, err, out)
		}
		return string(out)
	}
	before := saved()
	out := capture(capturing)
	if !strings.Contains(out, "# IPv6") {
		t.Fatalf("the pod has an IPv6 address, but no IPv6 rules were applied:\n%s", out)
	}

	startListeners(t, helper(pod, "listen",
		"outbound=tcp4/0.0.0.0:15001 outbound=tcp6/[::]:15001 inbound=tcp4/0.0.0.0:15006 inbound=tcp6/[::]:15006 "+
			"proxy-readiness=tcp/:15021 app=tcp/:9000"))
	startListeners(t, helper(peer, "listen", "peer=tcp/:8080 peer=tcp/:9999"))
	const proxyUser, appUser, proxyGroupOnly = "--reuid=1337 --regid=1337 --clear-groups", "--reuid=1000 --regid=1000 --clear-groups", "--reuid=1000 --regid=1337 --clear-groups"
	type probe struct {
		name, from, as, to, want string
	}
	probes := []probe{
		{"outbound from an app is captured", pod, appUser, peerAddr + ":8080", "outbound local=127.0.0.1:15001 orig=" + peerAddr + ":8080"},
		{"outbound from root is captured", pod, "", peerAddr + ":8080", "outbound local=127.0.0.1:15001 orig=" + peerAddr + ":8080"},
		{"outbound IPv6 is captured", pod, appUser, "[" + peerAddr6 + "]:8080", "outbound local=[::1]:15001 orig=[" + peerAddr6 + "]:8080"},
		{"the proxy's UID bypasses", pod, proxyUser, peerAddr + ":8080", "peer local=" + peerAddr + ":8080 orig=-"},
		{"the proxy's GID bypasses", pod, proxyGroupOnly, peerAddr + ":8080", "peer local=" + peerAddr + ":8080 orig=-"},
		{"an excluded outbound port bypasses", pod, appUser, peerAddr + ":9999", "peer local=" + peerAddr + ":9999 orig=-"},
		{"an excluded outbound CIDR bypasses", pod, appUser, otherAddr + ":8080", "peer local=" + otherAddr + ":8080 orig=-"},
		{"loopback bypasses", pod, appUser, "127.0.0.1:9000", "app local=127.0.0.1:9000 orig=-"},
		{"inbound to an app port is captured", peer, "", podAddr + ":8080", "inbound local=" + podAddr + ":15006 orig=" + podAddr + ":8080"},
		{"inbound IPv6 to an app port is captured", peer, "", "[" + podAddr6 + "]:8080", "inbound local=[" + podAddr6 + "]:15006 orig=[" + podAddr6 + "]:8080"},
		{"inbound to the proxy's readiness port bypasses", peer, "", podAddr + ":15021", "proxy-readiness local=" + podAddr + ":15021 orig=-"},
		{"inbound to an excluded port bypasses", peer, "", podAddr + ":9000", "app local=" + podAddr + ":9000 orig=-"},
	}
	check := func(t *testing.T, probes []probe) {
		for _, p := range probes {
			var asUser []string
			if p.as != "" {
				asUser = append([]string{"setpriv"}, strings.Fields(p.as)...)
			}
			got, err := helper(p.from, "dial", p.to, asUser...).Output()
			if err != nil {
				t.Fatalf("%s: dialing: %v", p.name, err)
			}
			if line := strings.TrimSpace(string(got)); line != p.want {
				t.Errorf("%s: got %q, want %q", p.name, line, p.want)
			}
		}
	}
	check(t, probes)

	applied := saved()
	capture(capturing)
	if again := saved(); again != applied {
		t.Errorf("a second run changed the rules:\nafter the first:\n%s\nafter the second:\n%s", applied, again)
	}

	capture("--cleanup")
	if after := saved(); after != before {
		t.Errorf("--cleanup did not restore the tables:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	check(t, []probe{
		{"after --cleanup, outbound goes where it was sent", pod, appUser, peerAddr + ":8080", "peer local=" + peerAddr + ":8080 orig=-"},
		{"after --cleanup, inbound goes where it was sent", peer, "", podAddr + ":9000", "app local=" + podAddr + ":9000 orig=-"},
	})
	if out := capture("--cleanup"); strings.Contains(out, "*nat") {
		t.Errorf("a second --cleanup found something to remove:\n%s", out)
	}
}

// counters are the packet and byte counts iptables-save prints, which traffic changes.
var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// normalizeSave keeps the rules and chains of iptables-save output: no comments, no counters.
func normalizeSave(s string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			b.WriteString(counters.ReplaceAllString(l, "[0:0]") + "\n")
		}
	}
	return b.String()
}

func startListeners(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() { line, _ := bufio.NewReader(stdout).ReadString('\n'); ready <- line }()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("listeners did not start: %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listeners did not start in 10s")
	}
}

// newNamespace makes a network namespace with lo up, deleted when the test ends.
func newNamespace(t *testing.T, role string) string {
	name := fmt.Sprintf("smi-capture-%s-%d", role, os.Getpid())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// requireRootAndTools skips unless the test can make network namespaces and has the iptables
// tools (hack/capture-deps.sh installs them); under SMI_E2E_NETNS_STRICT (CI) it fails instead.
func requireRootAndTools(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, iptables)")
	}
	for _, tool := range []string{"ip", "setpriv", "iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (hack/capture-deps.sh installs the iptables tools)")
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("SMI_E2E_NETNS_STRICT") != "" {
		t.Fatalf("needs %s", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s", strings.Join(missing, ", "))
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	runOut(t, name, args...)
}

func runOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
