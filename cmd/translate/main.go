package translate

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
	"github.com/smi-operator/smi-operator/translators/gamma"
	"github.com/smi-operator/smi-operator/translators/istio"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Exit codes of [Main].
const (
	// ExitOK: everything read was accepted and every SMI object would be programmed; warnings
	// and notes may have been printed.
	ExitOK = 0
	// ExitInvalid: some input would be refused by the cluster (unreadable document, unknown kind
	// or version, invalid object), or some SMI object would not be programmed (a diagnostic of
	// severity Error). Each cause is a line starting with "error:" on standard error, and the
	// output is still what the accepted objects produce.
	ExitInvalid = 1
	// ExitUsage: bad flags or arguments, or an input that cannot be read at all; nothing is printed
	// on standard output.
	ExitUsage = 2
)

// Backends and proxies.
const (
	backendIstio = "istio"
	backendXDS   = "xds"
	backendGamma = "gamma"
	backendNone  = "none"

	proxyGRPC  = "grpc"
	proxyEnvoy = "envoy"
	proxyAll   = "all"
)

// options are the command's flags.
type options struct {
	backend, proxy string
	settings       mesh.Settings
	namespace      string
	namespaceSet   bool
	// grpcServerPorts, when set, are the ports of the per-identity gRPC server Listeners.
	grpcServerPorts []uint32
}

const usageText = `Usage: smi-operator translate [flags] FILE|DIR|- ...

Reads SMI objects of any served version, with the Services, EndpointSlices, Deployments,
StatefulSets and DaemonSets they need (and the Pods the EndpointSlices name, whose
ServiceAccounts the xDS backend's mutual-TLS clusters accept), from YAML or JSON manifests
("-" is standard input; a directory is read recursively: *.yaml, *.yml, *.json, in name order),
checks them as the cluster would (the SMI CRDs' schemas and the SMI validating webhook, object
metadata, strict fields), and prints what the operator would program: the Istio objects as a
YAML stream (--backend=istio), the Gateway API routes as a YAML stream (--backend=gamma), or the
xDS resources as JSON (--backend=xds). No cluster is contacted.

Standard error gets one line per finding, "error:", "warning:" or "note:" first: input the cluster
would refuse, then the diagnostics the SMI objects would get as conditions.

Exit status: 0 success (warnings allowed); 1 some input would be refused, or some SMI object would
not be programmed (each has an "error:" line; the output is what the rest produces); 2 bad usage
or unreadable input.

Flags:
`

// Main runs "smi-operator translate" with args (the arguments after "translate") and returns
// the exit code. It reads only the files args name, and stdin for "-".
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, files, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "smi-operator translate: %v\nRun 'smi-operator translate -h' for usage.\n", err)
		return ExitUsage
	}
	inputs, notes, err := readInputs(files, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "smi-operator translate: %v\n", err)
		return ExitUsage
	}
	out, reports := run(opts, inputs)
	reports = append(notes, reports...)
	stdout.Write(out)
	code := ExitOK
	for _, r := range reports {
		fmt.Fprintln(stderr, r)
		if r.level == levelError {
			code = ExitInvalid
		}
	}
	return code
}

// parseFlags parses flags wherever they are among the file arguments, as kubectl does; after
// "--" everything is a file.
func parseFlags(args []string, stdout io.Writer) (options, []string, error) {
	var opts options
	var grpcPorts string
	fs := flag.NewFlagSet("translate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.backend, "backend", backendIstio, "Mesh backend to translate for: istio (Istio objects as YAML), gamma (Gateway API routes for meshes as YAML), xds (the operator's own xDS "+
		"server's resources as JSON), or none (only check the input).")
	fs.StringVar(&opts.proxy, "proxy", proxyAll, "With --backend=xds, the clients to translate for: grpc (proxyless gRPC), envoy (Envoy sidecars) or all.")
	fs.StringVar(&grpcPorts, "grpc-server-ports", "", "With --backend=xds, comma-separated ports of the proxyless gRPC server Listeners rendered "+
		"for each identity (listening on 0.0.0.0); default: the ports its TrafficTargets name, else 8080.")
	fs.StringVar(&opts.namespace, "namespace", "default", "Namespace of objects that name none, as kubectl apply's --namespace.")
	fs.StringVar(&opts.namespace, "n", "default", "Shorthand for --namespace.")
	// The manager's flags (main.go), with the same defaults.
	opts.settings.BindFlags(fs)
	fs.Lookup("access-namespace-selector").Usage += " A namespace is judged by its Namespace manifest in the input; " +
		"one without has only its name label."

	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, usageText)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
			}
			return opts, nil, err
		}
		remaining := fs.Args()
		if consumed := len(rest) - len(remaining); consumed > 0 && rest[consumed-1] == "--" {
			files = append(files, remaining...)
			break
		}
		if len(remaining) == 0 {
			break
		}
		files, rest = append(files, remaining[0]), remaining[1:]
	}
	fs.Visit(func(f *flag.Flag) {
		opts.namespaceSet = opts.namespaceSet || f.Name == "namespace" || f.Name == "n"
	})

	switch opts.backend {
	case backendIstio, backendGamma, backendXDS, backendNone:
	default:
		return opts, nil, fmt.Errorf("unknown --backend %q: use istio, gamma, xds or none", opts.backend)
	}
	switch opts.proxy {
	case proxyGRPC, proxyEnvoy, proxyAll:
	default:
		return opts, nil, fmt.Errorf("unknown --proxy %q: use grpc, envoy or all", opts.proxy)
	}
	if grpcPorts != "" {
		for p := range strings.SplitSeq(grpcPorts, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil || n == 0 {
				return opts, nil, fmt.Errorf("--grpc-server-ports: %q is not a port from 1 to 65535", p)
			}
			if !slices.Contains(opts.grpcServerPorts, uint32(n)) {
				opts.grpcServerPorts = append(opts.grpcServerPorts, uint32(n))
			}
		}
		slices.Sort(opts.grpcServerPorts)
	}
	if err := opts.settings.Validate(); err != nil {
		return opts, nil, fmt.Errorf("invalid mesh settings: %w", err)
	}
	if len(files) == 0 {
		return opts, nil, errors.New("no input: name files, directories, or - for standard input")
	}
	return opts, files, nil
}

// run translates the files and returns the output and the reports, in input order then the
// diagnostics in mesh.SortDiagnostics order.
func run(opts options, files []file) ([]byte, []report) {
	r := newReader(opts.namespace, opts.namespaceSet)
	for _, f := range files {
		r.file(f.name, f.data)
	}
	if len(r.objects) == 0 && len(r.reports) == 0 {
		r.reports = append(r.reports, report{level: levelWarning, text: "no objects in the input"})
	}

	var snap mesh.Snapshot
	var endpoints endpointInputs
	positions := map[mesh.ObjectRef]position{}
	for _, o := range r.objects {
		switch obj := o.obj.(type) {
		case *discoveryv1.EndpointSlice:
			endpoints.slices = append(endpoints.slices, *obj)
			continue
		case *corev1.Pod:
			endpoints.pods = append(endpoints.pods, *obj)
			continue
		}
		if err := snap.Add(o.obj); err != nil {
			r.report(levelError, o.pos, "%v", err)
			continue
		}
		if _, isSMI := smi.HubFor(o.gvk.Group); isSMI {
			positions[mesh.ObjectRef{Kind: o.gvk.Kind, Namespace: o.namespace, Name: o.name}] = o.pos
		}
	}

	model, diags := mesh.Build(snap, opts.settings)
	var out bytes.Buffer
	var backendDiags []mesh.Diagnostic
	var err error
	switch opts.backend {
	case backendIstio:
		var objs istio.Output
		objs, backendDiags = istio.Translate(model, opts.settings)
		err = writeIstio(&out, objs)
	case backendGamma:
		var objs gamma.Output
		objs, backendDiags = gamma.Translate(model, opts.settings)
		err = manifest.Write(&out, objs.Objects())
	case backendXDS:
		backendDiags, err = writeXDS(&out, model, snap, endpoints, opts)
	}
	if err != nil {
		out.Reset()
		r.reports = append(r.reports, report{level: levelError, text: "rendering the output: " + err.Error()})
	}
	for _, d := range mesh.SortDiagnostics(append(diags, backendDiags...)) {
		r.reports = append(r.reports, diagnosticReport(d, positions))
	}
	return out.Bytes(), r.reports
}

// diagnosticReport renders a diagnostic as "<severity>: <position>: <Kind> <ns>/<name>:
// <Condition>=False <Reason>: <message>", the condition the object would get.
func diagnosticReport(d mesh.Diagnostic, positions map[mesh.ObjectRef]position) report {
	level := levelWarning
	if d.Severity == mesh.SeverityError {
		level = levelError
	}
	at := d.Object.String()
	if pos, ok := positions[d.Object]; ok {
		at = pos.String() + ": " + at
	}
	return report{level: level, at: at, text: fmt.Sprintf("%s=False %s: %s", d.Condition, d.Reason, d.Message)}
}
