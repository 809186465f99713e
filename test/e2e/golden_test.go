package e2e

import (
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/test/testenv"
)

// Every object in the Istio translator's golden files (one per mapping row and edge case) must be
// accepted by the API server's validation of Istio's real CRDs, including the ones the envtest
// scenarios do not produce (mTLS DestinationRules, header and port rules, TCP routes).
var _ = Describe("Istio translator golden output", func() {
	root, err := testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	goldens, err := filepath.Glob(filepath.Join(root, "translators", "istio", "testdata", "*.golden.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(goldens).NotTo(BeEmpty())

	for _, golden := range goldens {
		It("passes the API server's validation: "+filepath.Base(golden), func(ctx SpecContext) {
			// Outside the access namespaces: the golden's own allow-nothing policy would find the
			// operator's there.
			ns := newLabelledNamespace(ctx, map[string]string{accessOffLabel: "off"})
			data, err := os.ReadFile(golden)
			Expect(err).NotTo(HaveOccurred())
			for _, doc := range strings.Split(string(data), "\n---\n") {
				u := &unstructured.Unstructured{}
				Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
				if u.GetKind() == "" {
					continue // the header or the diagnostics comment
				}
				u.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, u, client.DryRunAll)).To(Succeed(), "%s %s in %s", u.GetKind(), u.GetName(), filepath.Base(golden))
			}
		})
	}
})
