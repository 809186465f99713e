package capture

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// tools are the commands of a family.
func (f Family) tools() (save, restore string) {
	if f == IPv6 {
		return "ip6tables-save", "ip6tables-restore"
	}
	return "iptables-save", "iptables-restore"
}

// Apply installs the rules of cfg in family f, in the network namespace of this process, and
// returns the restore input it applied.
func Apply(cfg Config, f Family) ([]byte, error) {
	saved, err := Save(f)
	if err != nil {
		return nil, err
	}
	rules := Rules(cfg, f, saved)
	return rules, restore(f, rules)
}

// Cleanup removes what Apply installed in family f, and returns the restore input it applied (nil:
// nothing was installed).
func Cleanup(f Family) ([]byte, error) {
	saved, err := Save(f)
	if err != nil {
		return nil, err
	}
	rules := CleanupRules(saved)
	if rules == nil {
		return nil, nil
	}
	return rules, restore(f, rules)
}

// Save is the nat table of family f as iptables-save prints it.
func Save(f Family) (string, error) {
	save, _ := f.tools()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(save, "-t", "nat")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s -t nat: %w: %s", save, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func restore(f Family, rules []byte) error {
	_, tool := f.tools()
	var stderr bytes.Buffer
	// --noflush: only the operator's chains (declared in the input) are flushed, not the tables.
	cmd := exec.Command(tool, "--noflush")
	cmd.Stdin, cmd.Stderr = bytes.NewReader(rules), &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s --noflush: %w: %s", tool, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// HasIPv6 says whether the network namespace has a global IPv6 address on an interface other
// than lo: a pod that has one gets the IPv6 rules too.
func HasIPv6() (bool, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return false, err
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.To4() == nil && ipnet.IP.IsGlobalUnicast() {
				return true, nil
			}
		}
	}
	return false, nil
}
