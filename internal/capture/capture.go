// Package capture writes the netfilter rules that put a pod's TCP traffic through its sidecar proxy,
// the rules of a classic sidecar (Istio's istio-init): outbound connections are redirected to the
// proxy's outbound port, inbound ones to its inbound port, and the proxy's own traffic (its UID or
// GID), loopback and the excluded ports and CIDRs go untouched.
//
// The rules are written as iptables-restore input and applied with one iptables-restore call per
// address family, not through a Go iptables library or one iptables call per rule: a restore is a
// single atomic commit (a pod never runs with half its rules), it is what both the nf_tables and the
// legacy variants of the tools take, and the input is plain text a golden file can pin and an
// operator can read (Rules, and `smi-operator iptables --dry-run`). The chains are the operator's
// own (prefix Chain), hooked into nat PREROUTING and OUTPUT by one jump each; applying again
// flushes and refills them and adds a jump only where it is missing, so that a restarted init
// container leaves one set of rules, and Cleanup removes exactly what Apply added.
package capture

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The defaults of a sidecar's capture; the injected init container passes them explicitly.
const (
	// DefaultProxyUID and DefaultProxyGID are the identity the proxy runs as; its traffic is never
	// captured (it would loop).
	DefaultProxyUID = 1337
	DefaultProxyGID = 1337
	// DefaultOutboundPort is where the proxy takes the connections the pod's apps open.
	DefaultOutboundPort = 15001
	// DefaultInboundPort is where the proxy takes the connections to the pod's apps.
	DefaultInboundPort = 15006
)

// AlwaysExcludedInboundPorts are the proxy's own ports reached from outside the pod: Envoy's
// Prometheus stats (15090), its readiness (15021) and the agent's health and merged metrics
// (15020). They are excluded whatever the configuration says.
var AlwaysExcludedInboundPorts = []uint16{15020, 15021, 15090}

// Chain prefixes the chains the rules add.
const Chain = "SMI"

// The chains, in the nat table.
const (
	chainInbound    = Chain + "_INBOUND"     // from PREROUTING: which inbound connections go to the proxy
	chainInRedirect = Chain + "_IN_REDIRECT" // to the inbound port
	chainOutbound   = Chain + "_OUTPUT"      // from OUTPUT: which outbound connections go to the proxy
	chainRedirect   = Chain + "_REDIRECT"    // to the outbound port
)

// Config says what to capture.
type Config struct {
	ProxyUID, ProxyGID        uint32
	OutboundPort, InboundPort uint16
	// IncludeInboundPorts are the inbound ports captured; nil captures every port.
	IncludeInboundPorts []uint16
	// ExcludeInboundPorts are never captured inbound, besides AlwaysExcludedInboundPorts.
	ExcludeInboundPorts []uint16
	// ExcludeOutboundPorts are destination ports never captured outbound.
	ExcludeOutboundPorts []uint16
	// ExcludeOutboundCIDRs are destinations never captured outbound; each applies to the rules of
	// its own address family.
	ExcludeOutboundCIDRs []netip.Prefix
}

// Family is IPv4 or IPv6: each has its own tables and tools.
type Family int

const (
	IPv4 Family = iota
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// loopback is the family's loopback address, never captured outbound.
func (f Family) loopback() string {
	if f == IPv6 {
		return "::1/128"
	}
	return "127.0.0.1/32"
}

// Hooks are the jumps into the operator's chains from nat PREROUTING and OUTPUT, as iptables-save
// prints them.
var Hooks = []string{
	"-A PREROUTING -p tcp -j " + chainInbound,
	"-A OUTPUT -p tcp -j " + chainOutbound,
}

// chains are the operator's chains; every one is declared (so flushed) by Rules.
var chains = []string{chainInbound, chainInRedirect, chainOutbound, chainRedirect}

// Rules is the iptables-restore input (for `iptables-restore --noflush`) that captures as cfg says
// in family f, given the nat table as iptables-save prints it now (saved): the operator's chains are
// flushed and refilled, and the jumps into them added where missing.
func Rules(cfg Config, f Family, saved string) []byte {
	var b bytes.Buffer
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("*nat")
	for _, c := range chains {
		line(":%s - [0:0]", c)
	}
	present := savedRules(saved)
	for _, h := range Hooks {
		if !present[h] {
			line("%s", h)
		}
	}
	line("-A %s -p tcp -j REDIRECT --to-ports %d", chainInRedirect, cfg.InboundPort)
	line("-A %s -p tcp -j REDIRECT --to-ports %d", chainRedirect, cfg.OutboundPort)

	for _, p := range sortedPorts(append(slices.Clone(AlwaysExcludedInboundPorts), cfg.ExcludeInboundPorts...)) {
		line("-A %s -p tcp --dport %d -j RETURN", chainInbound, p)
	}
	if cfg.IncludeInboundPorts == nil {
		line("-A %s -p tcp -j %s", chainInbound, chainInRedirect)
	}
	for _, p := range sortedPorts(cfg.IncludeInboundPorts) {
		line("-A %s -p tcp --dport %d -j %s", chainInbound, p, chainInRedirect)
	}

	// The proxy's own connections (it runs as ProxyUID/ProxyGID) would come back to it.
	line("-A %s -m owner --uid-owner %d -j RETURN", chainOutbound, cfg.ProxyUID)
	line("-A %s -m owner --gid-owner %d -j RETURN", chainOutbound, cfg.ProxyGID)
	// Connections inside the pod (to localhost, or to its own addresses, which route through lo).
	line("-A %s -o lo -j RETURN", chainOutbound)
	line("-A %s -d %s -j RETURN", chainOutbound, f.loopback())
	for _, p := range sortedPorts(cfg.ExcludeOutboundPorts) {
		line("-A %s -p tcp --dport %d -j RETURN", chainOutbound, p)
	}
	for _, cidr := range cfg.ExcludeOutboundCIDRs {
		if cidr.Addr().Is4() == (f == IPv4) {
			line("-A %s -d %s -j RETURN", chainOutbound, cidr.Masked())
		}
	}
	line("-A %s -j %s", chainOutbound, chainRedirect)
	line("COMMIT")
	return b.Bytes()
}

// CleanupRules is the iptables-restore input (for `iptables-restore --noflush`) that removes what
// Rules added, given the nat table as iptables-save prints it now: every jump into the operator's
// chains, then the chains. Nil when there is nothing to remove.
func CleanupRules(saved string) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(saved, "\n") {
		l = strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(l, "-A "); ok && jumpsToOurs(l) && !strings.HasPrefix(rest, Chain+"_") {
			fmt.Fprintf(&b, "-D %s\n", rest)
		}
	}
	declared := savedChains(saved)
	for _, c := range chains {
		if declared[c] {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c) // flushed, so that it can be deleted
		}
	}
	for _, c := range chains {
		if declared[c] {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return append(append([]byte("*nat\n"), b.Bytes()...), "COMMIT\n"...)
}

// jumpsToOurs says a saved rule jumps into one of the operator's chains.
func jumpsToOurs(rule string) bool {
	fields := strings.Fields(rule)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-j" && slices.Contains(chains, fields[i+1]) {
			return true
		}
	}
	return false
}

// savedRules are the rules in iptables-save output, as printed.
func savedRules(saved string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(saved, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "-A ") {
			out[l] = true
		}
	}
	return out
}

// savedChains are the chains declared in iptables-save output.
func savedChains(saved string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(saved, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), ":"); ok {
			if name, _, ok := strings.Cut(rest, " "); ok {
				out[name] = true
			}
		}
	}
	return out
}

func sortedPorts(ports []uint16) []uint16 {
	out := slices.Clone(ports)
	slices.Sort(out)
	return slices.Compact(out)
}

// ParsePorts reads a comma-separated list of ports ("" is none); "*" is every port (nil, allowed
// only when star is). what names the list in errors.
func ParsePorts(s, what string, star bool) ([]uint16, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		if !star {
			return nil, fmt.Errorf("%s: \"*\" is not allowed here", what)
		}
		return nil, nil
	}
	out := []uint16{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.ParseUint(f, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%s: %q is not a port (1-65535)", what, f)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

// ParseCIDRs reads a comma-separated list of CIDRs ("" is none). what names the list in errors.
func ParseCIDRs(s, what string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a CIDR such as 10.0.0.0/8 or fd00::/8", what, f)
		}
		out = append(out, p)
	}
	return out, nil
}
