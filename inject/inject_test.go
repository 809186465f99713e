package inject_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/inject"
	"github.com/smi-operator/smi-operator/internal/golden"
)

// testSettings are an SMIOperator's spec.xds.injection with every field set.
func testSettings() v1alpha1.InjectionSpec {
	spec := v1alpha1.SMIOperatorSpec{XDS: v1alpha1.XDSSpec{Injection: v1alpha1.InjectionSpec{
		ExcludeInboundPorts: []int32{22}, ExcludeOutboundPorts: []int32{5432}, ExcludeOutboundCIDRs: []string{"169.254.169.254/32"},
	}}}
	return spec.WithDefaults().XDS.Injection
}

func testConfig() inject.Config {
	return inject.Config{
		Injection: testSettings(), AgentImage: "registry.example/smi-operator:v0.1.0",
		XDSAddress: "smi-operator-xds.smi-operator-system.svc:15010", TokenAudience: "smi-operator-xds",
		TrustDomain: "corp.example",
	}
}

// TestPodGolden injects every testdata/<case>.yaml pod (in a namespace labelled for injection)
// and compares the pod with testdata/<case>.golden.yaml.
func TestPodGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range cases {
		if strings.HasSuffix(file, ".golden.yaml") {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{}
			if err := yaml.UnmarshalStrict(data, pod); err != nil {
				t.Fatal(err)
			}
			enabled := map[string]string{v1alpha1.InjectLabel: v1alpha1.InjectEnabled}
			d, err := inject.Decide(pod, pod.Namespace, enabled, "smi-operator-system", testSettings())
			if err != nil || d.Template == "" {
				t.Fatalf("not injected: %v %s", err, d.Why)
			}
			inject.Pod(pod, d, testConfig())
			out, err := yaml.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, strings.TrimSuffix(file, ".yaml")+".golden.yaml", "# Injected from "+filepath.Base(file)+"\n"+string(out))
		})
	}
}

// TestDecide: who is injected, with which template, and which annotations are refused, naming
// themselves.
func TestDecide(t *testing.T) {
	enabled := map[string]string{v1alpha1.InjectLabel: v1alpha1.InjectEnabled}
	disabled := map[string]string{v1alpha1.InjectLabel: v1alpha1.InjectDisabled}
	pod := func(annotations map[string]string, hostNetwork bool) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: hostNetwork, Containers: []corev1.Container{{Name: "app"}}}}
		p.Annotations = annotations
		return p
	}
	a := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		namespace string
		labels    map[string]string
		template  string // "" when left alone
		err       string // a part of the error, when refused
	}{
		{"labelled namespace", pod(nil, false), "shop", enabled, v1alpha1.ProxyEnvoy, ""},
		{"unlabelled namespace", pod(nil, false), "shop", nil, "", ""},
		{"the pod opts in", pod(a(v1alpha1.InjectLabel, "true"), false), "shop", nil, v1alpha1.ProxyEnvoy, ""},
		{"the pod opts out", pod(a(v1alpha1.InjectLabel, "false"), false), "shop", enabled, "", ""},
		{"a disabled namespace wins over the pod", pod(a(v1alpha1.InjectLabel, "true"), false), "shop", disabled, "", ""},
		{"proxyless gRPC", pod(a(v1alpha1.ProxyAnnotation, "grpc"), false), "shop", enabled, v1alpha1.ProxyGRPC, ""},
		{"host network", pod(a(v1alpha1.InjectLabel, "true"), true), "shop", enabled, "", ""},
		{"kube-system", pod(a(v1alpha1.InjectLabel, "true"), false), "kube-system", enabled, "", ""},
		{"the operator's namespace", pod(a(v1alpha1.InjectLabel, "true"), false), "smi-operator-system", enabled, "", ""},
		{"already injected", pod(a(v1alpha1.InjectedAnnotation, "envoy"), false), "shop", enabled, "", ""},
		{"inject: yes", pod(a(v1alpha1.InjectLabel, "yes"), false), "shop", enabled, "", `annotation smi-operator.io/inject: "yes"`},
		{"inject: True", pod(a(v1alpha1.InjectLabel, "True"), false), "shop", enabled, "", `annotation smi-operator.io/inject: "True"`},
		{"proxy: istio", pod(a(v1alpha1.ProxyAnnotation, "istio"), false), "shop", enabled, "", `annotation smi-operator.io/proxy: "istio"`},
		{"a port that is a name", pod(a(v1alpha1.ExcludeInboundPortsAnnotation, "http"), false), "shop", enabled, "", `annotation smi-operator.io/exclude-inbound-ports: "http" is not a port`},
		{"a CIDR that is an address", pod(a(v1alpha1.ExcludeOutboundCIDRsAnnotation, "10.0.0.1"), false), "shop", enabled, "", `annotation smi-operator.io/exclude-outbound-cidrs: "10.0.0.1" is not a CIDR`},
		{"* excluded", pod(a(v1alpha1.ExcludeOutboundPortsAnnotation, "*"), false), "shop", enabled, "", `annotation smi-operator.io/exclude-outbound-ports: "*" is not allowed here`},
		{"capture on a proxyless pod", pod(a(v1alpha1.ProxyAnnotation, "grpc", v1alpha1.ExcludeOutboundPortsAnnotation, "5432"), false), "shop", enabled, "",
			"annotation smi-operator.io/exclude-outbound-ports: a proxyless gRPC pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := inject.Decide(tc.pod, tc.namespace, tc.labels, "smi-operator-system", testSettings())
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case d.Template != tc.template:
				t.Fatalf("template %q (%s), want %q", d.Template, d.Why, tc.template)
			}
		})
	}
}
