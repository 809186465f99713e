package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	apimanifests "github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/api/pkg/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// testedKubeVersion is the Kubernetes version the operator is tested against (KUBERNETES_VERSION
// in the Makefile); the removed-API checks use it.
const testedKubeVersion = "1.37"

// Report is what the validation of a bundle found.
type Report struct {
	Errors   []string
	Warnings []string
}

// Validators are what `operator-sdk bundle validate --select-optional suite=operatorframework`
// runs, less the deprecated ones: the default bundle validators (CSV, CRDs, bundle consistency),
// good practices, and OperatorHub's (metadata, capabilities, categories).
var Validators = validation.DefaultBundleValidators.WithValidators(
	validation.GoodPracticesValidator,
	validation.OperatorHubV2Validator,
	validation.StandardCapabilitiesValidator,
	validation.StandardCategoriesValidator,
)

// Validate loads the bundle in dir as OLM's tooling does and runs Validators on it, then the
// project's own rules, which the validators do not know: the image labels repeat
// metadata/annotations.yaml, the permissions are minimal (no wildcards, no CRD writes), every owned
// kind has an example, conversion webhooks come with AllNamespaces alone, and the Deployment
// leaves the webhook certificate to OLM.
func Validate(dir string) (Report, error) {
	var r Report
	b, err := apimanifests.GetBundleFromDir(dir)
	if err != nil {
		return r, fmt.Errorf("loading the bundle from %s: %w", dir, err)
	}
	objs := append(b.ObjectsToValidate(), map[string]string{"k8s-version": testedKubeVersion})
	for _, result := range Validators.Validate(objs...) {
		for _, e := range result.Errors {
			r.Errors = append(r.Errors, e.Error())
		}
		for _, w := range result.Warnings {
			r.Warnings = append(r.Warnings, w.Error())
		}
	}
	if b.CSV == nil {
		r.Errors = append(r.Errors, "no ClusterServiceVersion in the bundle")
		return r, nil
	}
	r.Errors = append(r.Errors, checkLabels(dir)...)
	r.Errors = append(r.Errors, checkPermissions(b.CSV)...)
	r.Errors = append(r.Errors, checkExamples(b.CSV)...)
	r.Errors = append(r.Errors, checkWebhooks(b.CSV)...)
	r.Errors = append(r.Errors, checkDeployment(b.CSV)...)
	r.Errors = append(r.Errors, checkDescriptors(b.CSV)...)
	return r, nil
}

// checkLabels compares metadata/annotations.yaml with the LABELs of bundle.Dockerfile: OLM reads
// the image's labels and the file alike, and a bundle whose two disagree installs differently
// depending on who reads it.
func checkLabels(dir string) []string {
	var errs []string
	data, err := os.ReadFile(filepath.Join(dir, "metadata", "annotations.yaml"))
	if err != nil {
		return []string{err.Error()}
	}
	var file struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return []string{fmt.Sprintf("metadata/annotations.yaml: %v", err)}
	}
	labels, copies, err := dockerfileLabels(filepath.Join(dir, "bundle.Dockerfile"))
	if err != nil {
		return []string{err.Error()}
	}
	for _, k := range slices.Sorted(maps.Keys(file.Annotations)) {
		v, ok := labels[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("bundle.Dockerfile has no LABEL %s (metadata/annotations.yaml: %q)", k, file.Annotations[k]))
		case v != file.Annotations[k]:
			errs = append(errs, fmt.Sprintf("bundle.Dockerfile LABEL %s=%q, metadata/annotations.yaml says %q", k, v, file.Annotations[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if _, ok := file.Annotations[k]; !ok && strings.HasPrefix(k, "operators.operatorframework.io.") {
			errs = append(errs, fmt.Sprintf("bundle.Dockerfile LABEL %s is not in metadata/annotations.yaml", k))
		}
	}
	for _, key := range []string{annManifests, annMetadata} {
		want := "/" + strings.TrimSuffix(file.Annotations[key], "/") + "/"
		if !slices.Contains(copies, want) {
			errs = append(errs, fmt.Sprintf("bundle.Dockerfile copies nothing to %s (%s)", want, key))
		}
	}
	for _, key := range []string{annMediaType, annManifests, annMetadata, annPackage, annChannels, annDefaultChannel} {
		if file.Annotations[key] == "" {
			errs = append(errs, fmt.Sprintf("metadata/annotations.yaml has no %s", key))
		}
	}
	return errs
}

// dockerfileLabels reads the LABEL key=value pairs and the COPY destinations of a Dockerfile.
func dockerfileLabels(path string) (labels map[string]string, copies []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	labels = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "LABEL":
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, nil, fmt.Errorf("%s: LABEL %q is not key=value", path, kv)
				}
				if unquoted, err := strconv.Unquote(v); err == nil {
					v = unquoted
				}
				labels[k] = v
			}
		case "COPY":
			copies = append(copies, fields[len(fields)-1])
		}
	}
	return labels, copies, sc.Err()
}

// crdWriteVerbs are the verbs on CustomResourceDefinitions the operator must not have: OLM owns its
// CRDs (installs, upgrades and removes them).
var crdWriteVerbs = []string{"create", "update", "patch", "delete", "deletecollection", "*"}

func checkPermissions(csv *operatorsv1alpha1.ClusterServiceVersion) []string {
	var errs []string
	spec := csv.Spec.InstallStrategy.StrategySpec
	check := func(kind string, perms []operatorsv1alpha1.StrategyDeploymentPermissions) {
		for _, p := range perms {
			for i, rule := range p.Rules {
				where := fmt.Sprintf("%s of %s, rule %d", kind, p.ServiceAccountName, i)
				for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.NonResourceURLs} {
					if slices.ContainsFunc(list, func(s string) bool { return strings.Contains(s, "*") }) {
						errs = append(errs, fmt.Sprintf("%s has a wildcard: %v", where, rule))
						break
					}
				}
				if slices.Contains(rule.APIGroups, "apiextensions.k8s.io") && slices.Contains(rule.Resources, "customresourcedefinitions") &&
					slices.ContainsFunc(rule.Verbs, func(v string) bool { return slices.Contains(crdWriteVerbs, v) }) {
					errs = append(errs, fmt.Sprintf("%s may write CustomResourceDefinitions (%v); OLM manages them", where, rule.Verbs))
				}
			}
		}
	}
	check("permissions", spec.Permissions)
	check("clusterPermissions", spec.ClusterPermissions)
	if len(spec.Permissions)+len(spec.ClusterPermissions) == 0 {
		errs = append(errs, "the CSV asks for no permissions")
	}
	return errs
}

func checkExamples(csv *operatorsv1alpha1.ClusterServiceVersion) []string {
	var examples []unstructured.Unstructured
	if err := json.Unmarshal([]byte(csv.Annotations["alm-examples"]), &examples); err != nil {
		return []string{fmt.Sprintf("alm-examples: %v", err)}
	}
	have := map[schema.GroupVersionKind]bool{}
	for _, e := range examples {
		have[e.GroupVersionKind()] = true
	}
	var errs []string
	for _, o := range csv.Spec.CustomResourceDefinitions.Owned {
		group := strings.SplitN(o.Name, ".", 2)
		if len(group) != 2 {
			errs = append(errs, fmt.Sprintf("owned CRD name %q has no group", o.Name))
			continue
		}
		gvk := schema.GroupVersionKind{Group: group[1], Version: o.Version, Kind: o.Kind}
		if !have[gvk] {
			errs = append(errs, fmt.Sprintf("alm-examples has no %s", gvk))
		}
	}
	return errs
}

func checkWebhooks(csv *operatorsv1alpha1.ClusterServiceVersion) []string {
	var errs []string
	for _, w := range csv.Spec.WebhookDefinitions {
		if w.Type == operatorsv1alpha1.ConversionWebhook && !allNamespacesOnly(csv.Spec.InstallModes) {
			errs = append(errs, fmt.Sprintf("conversion webhook %s needs AllNamespaces as the only install mode", w.GenerateName))
		}
		found := false
		for _, d := range csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs {
			found = found || d.Name == w.DeploymentName
		}
		if !found {
			errs = append(errs, fmt.Sprintf("webhook %s names Deployment %q, which the CSV does not install", w.GenerateName, w.DeploymentName))
		}
	}
	return errs
}

func checkDeployment(csv *operatorsv1alpha1.ClusterServiceVersion) []string {
	var errs []string
	for _, d := range csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs {
		for _, c := range d.Spec.Template.Spec.Containers {
			if !slices.Contains(c.Args, "--cert-rotation=false") {
				errs = append(errs, fmt.Sprintf("Deployment %s container %s issues its own webhook certificate; OLM provides it (--cert-rotation=false)", d.Name, c.Name))
			}
			for _, m := range c.VolumeMounts {
				if m.MountPath == webhookCertDir {
					errs = append(errs, fmt.Sprintf("Deployment %s container %s mounts %s, where OLM mounts the webhook certificate", d.Name, c.Name, webhookCertDir))
				}
			}
		}
	}
	return errs
}

func checkDescriptors(csv *operatorsv1alpha1.ClusterServiceVersion) []string {
	var errs []string
	for _, o := range csv.Spec.CustomResourceDefinitions.Owned {
		if _, group, _ := strings.Cut(o.Name, "."); isOwnGroup(group) && (len(o.SpecDescriptors) == 0 || len(o.StatusDescriptors) == 0) {
			errs = append(errs, fmt.Sprintf("owned CRD %s %s has no spec or no status descriptors", o.Name, o.Version))
		}
	}
	return errs
}
