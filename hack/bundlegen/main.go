// Command bundlegen builds the operator's OLM bundle (registry+v1, under bundle/) and its
// file-based catalog (catalog/smi-operator/) from the kustomize output of config/manifests: the
// ClusterServiceVersion base, the operator as config/default installs it, and the samples.
//
// Why a program and not a hand-written CSV: the CSV repeats what config/ already says (the
// Deployment, the RBAC rules controller-gen derives from the code's markers, the webhooks, the
// CRDs' versions, the samples), and a copy kept by hand drifts. bundlegen derives every part and
// changes what OLM does differently:
//
//   - OLM issues the webhook serving certificate and mounts it where the webhook server reads it,
//     so the Deployment runs with --cert-rotation=false, loses its certificate volume, and the
//     webhook Service and certificate Secret are dropped (OLM creates its own).
//   - The ValidatingWebhookConfiguration and the CRDs' conversion settings become the CSV's
//     webhookdefinitions; OLM writes the configurations and injects its CA.
//   - The RBAC rules bound to the operator's ServiceAccount become permissions (Roles) and
//     clusterPermissions (ClusterRoles), without the rules that only certificate rotation needs;
//     the ServiceAccount and bindings are dropped (OLM creates them). Other objects (the metrics
//     reader ClusterRole, the xDS Service) go into the bundle as they are, namespace removed.
//   - Every served version of every CRD is an owned API; the SMIOperator's spec and status
//     descriptors are derived from its schema, the samples become alm-examples.
//
// The result is validated with operator-framework/api's validators and the checks in validate.go
// before bundlegen returns, so `make bundle` cannot write a bundle that fails them.
//
// Usage: kustomize build config/manifests | go run ./hack/bundlegen -version 0.1.0 \
// -image ghcr.io/smi-operator/smi-operator:v0.1.0 -bundle-image ghcr.io/smi-operator/smi-operator-bundle:v0.1.0 \
// -out bundle -catalog catalog/smi-operator
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/blang/semver/v4"
)

// Options are bundlegen's inputs besides the manifests.
type Options struct {
	Package        string   // OLM package name
	Version        string   // operator version, semver without the leading v
	Image          string   // operator image the Deployment runs
	BundleImage    string   // image the bundle is pushed as; the catalog refers to it
	Replaces       string   // CSV name this version replaces, if any
	SkipRange      string   // semver range of versions this one upgrades directly, if any
	Channels       []string // channels the bundle is in
	DefaultChannel string   // channel a Subscription gets without naming one
	Icon           string   // SVG file for the CSV's icon
}

func main() {
	var opts Options
	var in, out, catalogDir, channels string
	flag.StringVar(&in, "in", "-", "kustomize output of config/manifests; - reads standard input")
	flag.StringVar(&out, "out", "bundle", "bundle folder to write (manifests/, metadata/, bundle.Dockerfile)")
	flag.StringVar(&catalogDir, "catalog", "", "file-based catalog folder of the package to add this bundle to; empty writes none")
	flag.StringVar(&opts.Package, "package", "smi-operator", "OLM package name")
	flag.StringVar(&opts.Version, "version", "", "operator version (semver, no leading v)")
	flag.StringVar(&opts.Image, "image", "", "operator image")
	flag.StringVar(&opts.BundleImage, "bundle-image", "", "bundle image")
	flag.StringVar(&opts.Replaces, "replaces", "", "name of the CSV this version replaces (smi-operator.vX.Y.Z)")
	flag.StringVar(&opts.SkipRange, "skip-range", "", "semver range of versions that upgrade directly to this one")
	flag.StringVar(&channels, "channels", "stable", "comma-separated channels")
	flag.StringVar(&opts.DefaultChannel, "default-channel", "stable", "default channel")
	flag.StringVar(&opts.Icon, "icon", "config/manifests/icon.svg", "SVG icon")
	flag.Parse()
	opts.Channels = strings.Split(channels, ",")
	if err := run(in, out, catalogDir, opts); err != nil {
		fmt.Fprintln(os.Stderr, "bundlegen:", err)
		os.Exit(1)
	}
}

func run(in, out, catalogDir string, opts Options) error {
	if err := opts.check(); err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	objs, err := readObjects(r)
	if err != nil {
		return err
	}
	icon, err := os.ReadFile(opts.Icon)
	if err != nil {
		return err
	}
	b, err := build(objs, icon, opts)
	if err != nil {
		return err
	}
	if err := b.write(out); err != nil {
		return err
	}
	report, err := Validate(out)
	if err != nil {
		return err
	}
	for _, w := range report.Warnings {
		fmt.Fprintln(os.Stderr, "bundlegen: warning:", w)
	}
	if len(report.Errors) > 0 {
		return fmt.Errorf("the bundle written to %s is invalid:\n  %s", out, strings.Join(report.Errors, "\n  "))
	}
	if catalogDir == "" {
		return nil
	}
	if err := writeCatalog(catalogDir, b, opts); err != nil {
		return err
	}
	if errs := ValidateCatalog(filepath.Dir(catalogDir), out); len(errs) > 0 {
		return fmt.Errorf("the catalog written to %s is invalid:\n  %s", catalogDir, strings.Join(errs, "\n  "))
	}
	return nil
}

func (o Options) check() error {
	if _, err := semver.Parse(o.Version); err != nil {
		return fmt.Errorf("-version %q: %w", o.Version, err)
	}
	if o.Image == "" || o.BundleImage == "" {
		return fmt.Errorf("-image and -bundle-image are required")
	}
	if o.SkipRange != "" {
		if _, err := semver.ParseRange(o.SkipRange); err != nil {
			return fmt.Errorf("-skip-range %q: %w", o.SkipRange, err)
		}
	}
	for _, c := range o.Channels {
		if c == "" {
			return fmt.Errorf("-channels has an empty channel")
		}
	}
	found := false
	for _, c := range o.Channels {
		found = found || c == o.DefaultChannel
	}
	if !found {
		return fmt.Errorf("-default-channel %q is not one of -channels %v", o.DefaultChannel, o.Channels)
	}
	return nil
}

// CSVName is the ClusterServiceVersion's name for the version: <package>.v<version>.
func (o Options) CSVName() string { return o.Package + ".v" + o.Version }
