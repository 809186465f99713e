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
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/apis/linkerd"
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

// InstallLinkerdPolicyCRDsOrStandIns installs Linkerd's policy CRDs (InstallLinkerdPolicyCRDs)
// or, where they cannot be had, stand-ins (InstallLinkerdPolicyStandIns); real says which.
func InstallLinkerdPolicyCRDsOrStandIns(cfg *rest.Config) (real bool, err error) {
	err = InstallLinkerdPolicyCRDs(cfg)
	if errors.Is(err, ErrLinkerdCRDsUnavailable) {
		return false, InstallLinkerdPolicyStandIns(cfg)
	}
	return err == nil, err
}

// InstallLinkerdPolicyStandIns installs, for each Linkerd policy kind and version the operator
// writes (package apis/linkerd), a CRD that accepts any object of it: enough for a test of what
// the operator writes, reads back and deletes, nothing about whether Linkerd's schemas accept it
// (that is InstallLinkerdPolicyCRDs's, with Linkerd's own CRDs).
func InstallLinkerdPolicyStandIns(cfg *rest.Config) error {
	anything := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
		Type: "object", XPreserveUnknownFields: ptr.To(true),
	}}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, k := range []struct {
		kind, plural string
		version      schema.GroupVersion
	}{
		{linkerd.ServerKind, "servers", linkerd.ServerVersion},
		{linkerd.HTTPRouteKind, "httproutes", linkerd.HTTPRouteVersion},
		{linkerd.AuthorizationPolicyKind, "authorizationpolicies", linkerd.AuthorizationVersion},
		{linkerd.MeshTLSAuthenticationKind, "meshtlsauthentications", linkerd.AuthorizationVersion},
	} {
		crds = append(crds, &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: k.plural + "." + k.version.Group},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: k.version.Group, Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: k.kind, ListKind: k.kind + "List", Plural: k.plural, Singular: strings.ToLower(k.kind)},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: k.version.Version, Served: true, Storage: true, Schema: anything,
				}},
			},
		})
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
		return fmt.Errorf("installing stand-ins of Linkerd's policy CRDs: %w", err)
	}
	return nil
}
