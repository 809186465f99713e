package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The committed bundle and catalog, which `make bundle` writes and verify-generated keeps current.
var (
	bundleDir  = filepath.Join("..", "..", "bundle")
	catalogDir = filepath.Join("..", "..", "catalog")
	csvFile    = filepath.Join("manifests", "smi-operator.clusterserviceversion.yaml")
)

// acceptedWarnings are validator warnings that may remain, each with the reason it is accepted.
// None remains today; a new warning fails TestBundleIsValid until it is fixed or justified here.
var acceptedWarnings = map[string]string{}

func TestBundleIsValid(t *testing.T) {
	report, err := Validate(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range report.Errors {
		t.Errorf("error: %s", e)
	}
	t.Logf("%d validator warnings", len(report.Warnings))
	for _, w := range report.Warnings {
		if why, ok := acceptedWarnings[w]; ok {
			t.Logf("accepted warning: %s (%s)", w, why)
			continue
		}
		t.Errorf("warning: %s", w)
	}
}

func TestCatalogIsValid(t *testing.T) {
	for _, e := range ValidateCatalog(catalogDir, bundleDir) {
		t.Error(e)
	}
	// The catalog must point at the image the release pushes.
	data, err := os.ReadFile(filepath.Join(catalogDir, "smi-operator", catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	csv := readCSV(t, bundleDir)
	want := "image: ghcr.io/smi-operator/smi-operator-bundle:v" + nestedString(t, csv, "spec", "version")
	if !strings.Contains(string(data), want+"\n") {
		t.Errorf("catalog has no %q", want)
	}
}

// copyTree copies the committed bundle and catalog into a temporary folder to break.
func copyTree(t *testing.T) (bundle, catalog string) {
	t.Helper()
	tmp := t.TempDir()
	for src, dst := range map[string]string{bundleDir: filepath.Join(tmp, "bundle"), catalogDir: filepath.Join(tmp, "catalog")} {
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(tmp, "bundle"), filepath.Join(tmp, "catalog")
}

func readCSV(t *testing.T, dir string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, csvFile))
	if err != nil {
		t.Fatal(err)
	}
	var csv map[string]any
	if err := yaml.Unmarshal(data, &csv); err != nil {
		t.Fatal(err)
	}
	return csv
}

func writeCSV(t *testing.T, dir string, csv map[string]any) {
	t.Helper()
	data, err := yaml.Marshal(csv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, csvFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func nestedString(t *testing.T, obj map[string]any, path ...string) string {
	t.Helper()
	s, _, err := unstructured.NestedString(obj, path...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// editCSV returns a breakage that edits the CSV's YAML.
func editCSV(edit func(t *testing.T, csv map[string]any)) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		csv := readCSV(t, dir)
		edit(t, csv)
		writeCSV(t, dir, csv)
	}
}

// addClusterRule appends a rule to the CSV's clusterPermissions.
func addClusterRule(rule rbacv1.PolicyRule) func(t *testing.T, dir string) {
	return editCSV(func(t *testing.T, csv map[string]any) {
		perms, _, _ := unstructured.NestedSlice(csv, "spec", "install", "spec", "clusterPermissions")
		p := perms[0].(map[string]any)
		rules := p["rules"].([]any)
		r, err := toMap(rule)
		if err != nil {
			t.Fatal(err)
		}
		p["rules"] = append(rules, r)
		if err := unstructured.SetNestedSlice(csv, perms, "spec", "install", "spec", "clusterPermissions"); err != nil {
			t.Fatal(err)
		}
	})
}

func toMap(v any) (map[string]any, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, yaml.Unmarshal(data, &m)
}

// replaceInFile returns a breakage that replaces text in a bundle file.
func replaceInFile(file, old, new string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		path := filepath.Join(dir, file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), old) {
			t.Fatalf("%s has no %q to break", file, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestValidateFailsOnBrokenBundles breaks a copy of the committed bundle in one way at a time and
// checks that Validate reports it: the checks that pass on the real bundle can fail.
func TestValidateFailsOnBrokenBundles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		want    string
	}{
		{"wildcard verb", addClusterRule(rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"*"}}), "has a wildcard"},
		{"wildcard resource", addClusterRule(rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"*"}, Verbs: []string{"get"}}), "has a wildcard"},
		{"CRD create", addClusterRule(rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"create"}}), "may write CustomResourceDefinitions"},
		{"annotation and label disagree", replaceInFile(filepath.Join("metadata", "annotations.yaml"), "channels.v1: stable", "channels.v1: stable,fast"), `bundle.Dockerfile LABEL operators.operatorframework.io.bundle.channels.v1="stable", metadata/annotations.yaml says "stable,fast"`},
		{"label missing", replaceInFile("bundle.Dockerfile", "LABEL operators.operatorframework.io.bundle.package.v1=smi-operator\n", ""), "bundle.Dockerfile has no LABEL operators.operatorframework.io.bundle.package.v1"},
		{"label the annotations lack", replaceInFile("bundle.Dockerfile", "FROM scratch\n", "FROM scratch\nLABEL operators.operatorframework.io.test.v1=x\n"), "LABEL operators.operatorframework.io.test.v1 is not in metadata/annotations.yaml"},
		{"manifests not copied", replaceInFile("bundle.Dockerfile", "COPY manifests /manifests/\n", ""), "bundle.Dockerfile copies nothing to /manifests/"},
		{"kind without an example", replaceInFile(csvFile, `"kind": "UDPRoute",`, `"kind": "UDPRouteX",`), "alm-examples has no specs.smi-spec.io/v1alpha4, Kind=UDPRoute"},
		{"own namespace with conversion webhooks", editCSV(func(t *testing.T, csv map[string]any) {
			modes, _, _ := unstructured.NestedSlice(csv, "spec", "installModes")
			modes[0].(map[string]any)["supported"] = true
			_ = unstructured.SetNestedSlice(csv, modes, "spec", "installModes")
		}), "needs AllNamespaces as the only install mode"},
		{"operator issues its own certificate", replaceInFile(csvFile, "--cert-rotation=false", "--cert-rotation=true"), "issues its own webhook certificate"},
		{"no descriptors for the own kind", editCSV(func(t *testing.T, csv map[string]any) {
			owned, _, _ := unstructured.NestedSlice(csv, "spec", "customresourcedefinitions", "owned")
			for _, o := range owned {
				if o.(map[string]any)["kind"] == "SMIOperator" {
					delete(o.(map[string]any), "specDescriptors")
				}
			}
			_ = unstructured.SetNestedSlice(csv, owned, "spec", "customresourcedefinitions", "owned")
		}), "has no spec or no status descriptors"},
		// The operator-framework validators, not only the project's checks, are wired in.
		{"owned CRD missing from the bundle", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "manifests", "specs.smi-spec.io_udproutes.yaml")); err != nil {
				t.Fatal(err)
			}
		}, `owned CRD "specs.smi-spec.io/v1alpha4, Kind=UDPRoute" not found in bundle`},
		{"unknown category (OperatorHub)", replaceInFile(csvFile, "categories: Networking", "categories: Meshes"), `value "Meshes" is not in the set of standard categories`},
		{"unknown capability (OperatorHub)", replaceInFile(csvFile, "capabilities: Basic Install", "capabilities: Everything"), "Everything"},
		{"bad CSV name", replaceInFile(csvFile, "name: smi-operator.v0.1.0\n", "name: SMI_Operator\n"), "SMI_Operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := copyTree(t)
			tc.breakIt(t, dir)
			report, err := Validate(dir)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(report.Errors, "\n")
			if !strings.Contains(all, tc.want) {
				t.Errorf("errors do not mention %q:\n%s", tc.want, all)
			}
		})
	}
}

// TestValidateCatalogFailsOnBrokenCatalogs does the same for the catalog.
func TestValidateCatalogFailsOnBrokenCatalogs(t *testing.T) {
	catalogFilePath := filepath.Join("smi-operator", catalogFile)
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"channel entry without a bundle", "entries:\n- name: smi-operator.v0.1.0\n", "entries:\n- name: smi-operator.v0.1.0\n- name: smi-operator.v0.0.9\n", "smi-operator.v0.0.9"},
		{"default channel that does not exist", "defaultChannel: stable", "defaultChannel: fast", `"fast"`},
		{"image with another tag", "image: ghcr.io/smi-operator/smi-operator-bundle:v0.1.0", "image: ghcr.io/smi-operator/smi-operator-bundle:latest", "is not tagged v0.1.0"},
		{"API not provided", "    kind: UDPRoute\n", "    kind: UDPRouteX\n", "does not provide specs.smi-spec.io/v1alpha4/UDPRoute"},
		{"package version differs", "    packageName: smi-operator\n    version: 0.1.0\n", "    packageName: smi-operator\n    version: 0.1.1\n", "version 0.1.1, the CSV says 0.1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, catalog := copyTree(t)
			replaceInFile(catalogFilePath, tc.old, tc.new)(t, catalog)
			errs := strings.Join(ValidateCatalog(catalog, bundle), "\n")
			if !strings.Contains(errs, tc.want) {
				t.Errorf("errors do not mention %q:\n%s", tc.want, errs)
			}
		})
	}
}
