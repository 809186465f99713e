package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// LinkerdModule is the module that ships Linkerd's CRDs, as the Helm chart linkerd-crds.
const LinkerdModule = "github.com/linkerd/linkerd2"

// LinkerdCRDsEnv names a directory of Linkerd's policy CRD templates (the chart's
// templates/policy) to use instead of the module's.
const LinkerdCRDsEnv = "LINKERD_CRDS_DIR"

// ErrLinkerdCRDsUnavailable: neither LinkerdCRDsEnv nor the Go module proxy gives Linkerd's CRDs.
var ErrLinkerdCRDsUnavailable = errors.New("linkerd's CRDs are not available")

// LinkerdPolicyCRDDir finds Linkerd's policy CRD templates: LinkerdCRDsEnv, else
// charts/linkerd-crds/templates/policy of LinkerdModule as `go mod download` gets it (the module
// is no dependency of the operator: its CRDs are all the tests need of it). The error wraps
// ErrLinkerdCRDsUnavailable when neither gives them.
func LinkerdPolicyCRDDir() (string, error) {
	if dir := os.Getenv(LinkerdCRDsEnv); dir != "" {
		return dir, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command("go", "mod", "download", "-json", LinkerdModule+"@latest")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jsonErr := json.Unmarshal(out, &mod); err != nil || jsonErr != nil || mod.Dir == "" {
		return "", fmt.Errorf("%w: set %s, or let go mod download get %s (%v %s%s)",
			ErrLinkerdCRDsUnavailable, LinkerdCRDsEnv, LinkerdModule, err, mod.Error, stderr.String())
	}
	return filepath.Join(mod.Dir, "charts", "linkerd-crds", "templates", "policy"), nil
}

// helmDirective is a line of a chart template holding a Helm directive: in the CRD templates,
// the chart's labels and annotations, and conditionals around whole documents.
var helmDirective = regexp.MustCompile(`(?m)^.*\{\{.*\}\}.*$\n?`)

// InstallLinkerdPolicyCRDs installs Linkerd's policy CRDs from LinkerdPolicyCRDDir, the Helm
// directives of the templates stripped (they set metadata only).
func InstallLinkerdPolicyCRDs(cfg *rest.Config) error {
	dir, err := LinkerdPolicyCRDDir()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRD templates in %s: %v", dir, err)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(helmDirective.ReplaceAll(data, nil))))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.UnmarshalStrict(doc, crd); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if crd.Name != "" {
				crds = append(crds, crd)
			}
		}
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
		return fmt.Errorf("installing Linkerd's policy CRDs of %s: %w", dir, err)
	}
	return nil
}
