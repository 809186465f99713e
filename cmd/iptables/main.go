// Package iptables is the `smi-operator iptables` command, the init container of an injected
// Envoy sidecar: it installs the rules that put the pod's TCP traffic through the proxy (package
// internal/capture says which and how), or with --cleanup removes them. It needs only the
// NET_ADMIN and NET_RAW capabilities in the pod's network namespace, and the iptables tools.
//
//	smi-operator iptables [--proxy-uid 1337] [--proxy-gid 1337] [--outbound-port 15001]
//	    [--inbound-port 15006] [--include-inbound-ports '*'|p,p] [--exclude-inbound-ports p,p]
//	    [--exclude-outbound-ports p,p] [--exclude-outbound-cidrs cidr,cidr]
//	    [--ipv6 auto|true|false] [--dry-run] [--cleanup]
package iptables

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/smi-operator/smi-operator/internal/capture"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// Main runs the command with args (those after "iptables") and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, run, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "smi-operator iptables: %v\nRun 'smi-operator iptables -h' for usage.\n", err)
		return ExitUsage
	}
	families := []capture.Family{capture.IPv4}
	switch run.ipv6 {
	case "true":
		families = append(families, capture.IPv6)
	case "auto":
		has, err := capture.HasIPv6()
		if err != nil {
			fmt.Fprintf(stderr, "smi-operator iptables: looking for IPv6 addresses: %v\n", err)
			return ExitFail
		}
		if has {
			families = append(families, capture.IPv6)
		}
	}
	for _, f := range families {
		var rules []byte
		var err error
		switch {
		case run.dryRun && run.cleanup:
			var saved string
			if saved, err = capture.Save(f); err == nil {
				rules = capture.CleanupRules(saved)
			}
		case run.dryRun:
			// Printed as for an empty table: what a fresh pod gets.
			rules = capture.Rules(cfg, f, "")
		case run.cleanup:
			rules, err = capture.Cleanup(f)
		default:
			rules, err = capture.Apply(cfg, f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "smi-operator iptables: %s: %v\n", f, err)
			return ExitFail
		}
		fmt.Fprintf(stdout, "# %s\n%s", f, rules)
	}
	return ExitOK
}

// runOptions are the flags that say how to run, not what to capture.
type runOptions struct {
	ipv6            string
	dryRun, cleanup bool
}

func parse(args []string, output io.Writer) (capture.Config, runOptions, error) {
	fs := flag.NewFlagSet("smi-operator iptables", flag.ContinueOnError)
	fs.SetOutput(output)
	var (
		cfg                                              capture.Config
		run                                              runOptions
		uid, gid, outbound, inbound                      uint
		includeIn, excludeIn, excludeOut, excludeOutCIDR string
	)
	fs.UintVar(&uid, "proxy-uid", capture.DefaultProxyUID, "UID the proxy runs as: its connections are not captured.")
	fs.UintVar(&gid, "proxy-gid", capture.DefaultProxyGID, "GID the proxy runs as: its connections are not captured.")
	fs.UintVar(&outbound, "outbound-port", capture.DefaultOutboundPort, "Port the proxy takes outbound connections on.")
	fs.UintVar(&inbound, "inbound-port", capture.DefaultInboundPort, "Port the proxy takes inbound connections on.")
	fs.StringVar(&includeIn, "include-inbound-ports", "*", "Inbound ports to capture, comma-separated, or * for every one.")
	fs.StringVar(&excludeIn, "exclude-inbound-ports", "", fmt.Sprintf("Inbound ports never captured, comma-separated (besides %v, the proxy's own).", capture.AlwaysExcludedInboundPorts))
	fs.StringVar(&excludeOut, "exclude-outbound-ports", "", "Destination ports never captured outbound, comma-separated.")
	fs.StringVar(&excludeOutCIDR, "exclude-outbound-cidrs", "", "Destinations never captured outbound, comma-separated CIDRs (IPv4 and IPv6).")
	fs.StringVar(&run.ipv6, "ipv6", "auto", "Capture IPv6 too: true, false, or auto (when the pod has a global IPv6 address).")
	fs.BoolVar(&run.dryRun, "dry-run", false, "Print the iptables-restore input instead of applying it.")
	fs.BoolVar(&run.cleanup, "cleanup", false, "Remove the rules a previous run installed.")
	if err := fs.Parse(args); err != nil {
		return cfg, run, err
	}
	if fs.NArg() > 0 {
		return cfg, run, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, id := range []struct {
		name string
		v    uint
	}{{"--proxy-uid", uid}, {"--proxy-gid", gid}} {
		if id.v > 1<<32-1 {
			return cfg, run, fmt.Errorf("%s: %d is not an ID", id.name, id.v)
		}
	}
	for _, p := range []struct {
		name string
		v    uint
	}{{"--outbound-port", outbound}, {"--inbound-port", inbound}} {
		if p.v == 0 || p.v > 65535 {
			return cfg, run, fmt.Errorf("%s: %d is not a port (1-65535)", p.name, p.v)
		}
	}
	if outbound == inbound {
		return cfg, run, fmt.Errorf("--outbound-port and --inbound-port are both %d: the proxy tells the directions apart by port", outbound)
	}
	switch run.ipv6 {
	case "auto", "true", "false":
	default:
		return cfg, run, fmt.Errorf("--ipv6: %q is not auto, true or false", run.ipv6)
	}
	cfg.ProxyUID, cfg.ProxyGID = uint32(uid), uint32(gid)
	cfg.OutboundPort, cfg.InboundPort = uint16(outbound), uint16(inbound)
	var err error
	if cfg.IncludeInboundPorts, err = capture.ParsePorts(includeIn, "--include-inbound-ports", true); err != nil {
		return cfg, run, err
	}
	if cfg.ExcludeInboundPorts, err = capture.ParsePorts(excludeIn, "--exclude-inbound-ports", false); err != nil {
		return cfg, run, err
	}
	if cfg.ExcludeOutboundPorts, err = capture.ParsePorts(excludeOut, "--exclude-outbound-ports", false); err != nil {
		return cfg, run, err
	}
	if cfg.ExcludeOutboundCIDRs, err = capture.ParseCIDRs(excludeOutCIDR, "--exclude-outbound-cidrs"); err != nil {
		return cfg, run, err
	}
	return cfg, run, nil
}
