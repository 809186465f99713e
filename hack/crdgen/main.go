// Command crdgen turns controller-gen's per-version CRDs for the smi-sdk-go types into the
// operator's multi-version SMI CRDs.
//
// controller-gen must run once per SMI version package (the SDK types carry no storage-version
// marker, so one run over several versions of a kind refuses to pick one). crdgen then merges the
// versions of each kind and adds what the SDK types lack: the hub as storage version, the status
// subresource with smi.Status's schema, printer columns, conversion through the operator's webhook,
// and the validation the SDK types cannot express (required fields, enums, ranges, CEL, list keys).
// Every patch names the field it changes; a patch that matches no version is an error, so a renamed
// SDK field fails the generation instead of silently dropping a rule.
//
// Usage: go run ./hack/crdgen -in <controller-gen output root> -status <status CRD file> -out config/crd/bases
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/smi-operator/smi-operator/apis/smi"
)

func main() {
	in := flag.String("in", "", "folder holding controller-gen's output, one sub-folder per SMI version package")
	statusCRD := flag.String("status", "", "controller-gen's CRD for hack/crdgen/internal/v1 (source of the status schema)")
	out := flag.String("out", "config/crd/bases", "folder to write the merged CRDs to")
	flag.Parse()
	if err := run(*in, *statusCRD, *out); err != nil {
		fmt.Fprintln(os.Stderr, "crdgen:", err)
		os.Exit(1)
	}
}

func run(in, statusCRDPath, out string) error {
	status, err := statusSchema(statusCRDPath)
	if err != nil {
		return err
	}
	crds, err := loadAndMerge(in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(crds))
	for name := range crds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		crd := crds[name]
		if err := finish(crd, status); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := write(filepath.Join(out, crd.Spec.Group+"_"+crd.Spec.Names.Plural+".yaml"), crd); err != nil {
			return err
		}
	}
	return nil
}

func readCRD(path string) (*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return crd, nil
}

func statusSchema(path string) (apiextensionsv1.JSONSchemaProps, error) {
	crd, err := readCRD(path)
	if err != nil {
		return apiextensionsv1.JSONSchemaProps{}, err
	}
	s, ok := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"]
	if !ok {
		return s, fmt.Errorf("%s has no status schema", path)
	}
	return s, nil
}

// loadAndMerge reads every CRD under root and merges the versions of each kind into one CRD.
func loadAndMerge(root string) (map[string]*apiextensionsv1.CustomResourceDefinition, error) {
	merged := map[string]*apiextensionsv1.CustomResourceDefinition{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		crd, err := readCRD(path)
		if err != nil {
			return err
		}
		if _, isSMI := smi.HubFor(crd.Spec.Group); !isSMI {
			return fmt.Errorf("%s: group %q is not an SMI group", path, crd.Spec.Group)
		}
		if existing, ok := merged[crd.Name]; ok {
			existing.Spec.Versions = append(existing.Spec.Versions, crd.Spec.Versions...)
		} else {
			merged[crd.Name] = crd
		}
		return nil
	})
	if len(merged) == 0 && err == nil {
		err = fmt.Errorf("no CRDs found under %s", root)
	}
	return merged, err
}

// finish sets storage, status, printer columns, conversion and validation on a merged CRD.
func finish(crd *apiextensionsv1.CustomResourceDefinition, status apiextensionsv1.JSONSchemaProps) error {
	sort.Slice(crd.Spec.Versions, func(i, j int) bool { return crd.Spec.Versions[i].Name < crd.Spec.Versions[j].Name })
	hub, _ := smi.HubFor(crd.Spec.Group)
	storage := 0
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		v.Served = true
		v.Storage = v.Name == hub.Version
		if v.Storage {
			storage++
		}
		v.Subresources = &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}
		v.Schema.OpenAPIV3Schema.Properties["status"] = status
		v.AdditionalPrinterColumns = printerColumns(crd.Spec.Names.Kind, v.Schema.OpenAPIV3Schema)
	}
	if storage != 1 {
		return fmt.Errorf("hub version %s is not among the generated versions", hub.Version)
	}
	crd.Spec.Names.Categories = []string{"smi"}
	if len(crd.Spec.Versions) > 1 {
		// The service reference is kustomize's to rewrite (namePrefix, namespace); the caBundle is
		// injected at run time by the operator's certificate controller, or by OLM.
		path := "/convert"
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
			Strategy: apiextensionsv1.WebhookConverter,
			Webhook: &apiextensionsv1.WebhookConversion{
				ConversionReviewVersions: []string{"v1"},
				ClientConfig: &apiextensionsv1.WebhookClientConfig{
					Service: &apiextensionsv1.ServiceReference{Namespace: "system", Name: "webhook-service", Path: &path},
				},
			},
		}
	}
	return applyPatches(crd)
}

func printerColumns(kind string, root *apiextensionsv1.JSONSchemaProps) []apiextensionsv1.CustomResourceColumnDefinition {
	var cols []apiextensionsv1.CustomResourceColumnDefinition
	switch kind {
	case smi.TrafficSplitKind:
		cols = append(cols,
			apiextensionsv1.CustomResourceColumnDefinition{Name: "Service", Type: "string", JSONPath: ".spec.service", Description: "The apex service whose traffic is split"},
			apiextensionsv1.CustomResourceColumnDefinition{Name: "Backends", Type: "string", JSONPath: ".spec.backends", Description: "Services receiving the traffic, with their weights"})
	case smi.TrafficTargetKind:
		path := ".spec.destination.name"
		if _, hasSpec := root.Properties["spec"]; !hasSpec {
			path = ".destination.name" // v1alpha1 keeps its fields at the top level
		}
		cols = append(cols, apiextensionsv1.CustomResourceColumnDefinition{Name: "Destination", Type: "string", JSONPath: path, Description: "ServiceAccount allowed to receive the traffic"})
	}
	return append(cols,
		apiextensionsv1.CustomResourceColumnDefinition{Name: "Accepted", Type: "string", JSONPath: `.status.conditions[?(@.type=="Accepted")].status`, Description: "Whether the operator accepted the object"},
		apiextensionsv1.CustomResourceColumnDefinition{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"})
}

// write emits the CRD without the empty status and creationTimestamp that the Go type carries, as
// controller-gen does, so the files diff cleanly.
func write(path string, crd *apiextensionsv1.CustomResourceDefinition) error {
	data, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return err
	}
	delete(obj, "status")
	if meta, ok := obj["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	data, err = yaml.Marshal(obj)
	if err != nil {
		return err
	}
	header := "# Generated by hack/crdgen from the smi-sdk-go types (make manifests). DO NOT EDIT.\n---\n"
	return os.WriteFile(path, append([]byte(header), data...), 0o644)
}
