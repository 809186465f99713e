// Package crdvalidation judges an SMI object as the API server judges a create of it against the
// operator's CRDs, with no API server: the schemas are the generated CRDs themselves (embedded by
// config/crd), read and applied with k8s.io/apiextensions-apiserver's own packages, so that what
// `smi-operator translate` refuses, and the words it uses, cannot drift from the cluster's.
//
// [Validate] runs, in the API server's order:
//
//  1. decoding (the request's body into an unstructured object, apiextensions-apiserver's
//     schemaCoercingDecoder): metadata read as ObjectMeta, unknown fields pruned by the version's
//     structural schema and, as kubectl's default --validate=strict asks, reported
//     ("strict decoding error: unknown field \"spec.backend\""), nulls where the schema allows
//     none dropped, metadata coerced;
//  2. defaulting by the schema's defaults;
//  3. the strategy's PrepareForCreate: status dropped where the version has a status
//     subresource;
//  4. the strategy's Validate: kind and apiVersion, object metadata (the name a DNS-1123
//     subdomain, the namespace given, ...), the OpenAPI schema (types, required fields, enums,
//     lengths, item counts, patterns), embedded objects' metadata, list-type map and set
//     uniqueness, then the CEL rules, which the API server skips, saying so, when an error above
//     would make them meaningless.
//
// The admission webhooks come after this; the caller runs ours (apis/smi/validation) when
// nothing here refused the object, as the API server calls it only then. The sequence above is
// apiextensions-apiserver's (pkg/apiserver/customresource_handler.go and
// pkg/registry/customresource, whose strategy cannot be used as it is without pulling in the
// API server's etcd storage); every check in it is the library's own function. Updates are not
// modelled (no ratcheting): every object is judged as created.
package crdvalidation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/operation"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"

	"github.com/smi-operator/smi-operator/config/crd"
)

// version is what the API server builds from one served version of a CRD to handle its requests.
type version struct {
	kind            schema.GroupVersionKind
	namespaced      bool
	structural      *structuralschema.Structural
	schemaValidator apiservervalidation.SchemaValidator
	celValidator    *cel.Validator
	hasStatus       bool
}

// Served reports whether gvk is a kind and version the SMI CRDs, or the TrafficPolicy CRD, serve.
func Served(gvk schema.GroupVersionKind) bool {
	versions, err := loadVersions()
	if err != nil {
		panic(err) // the embedded CRDs are generated and tested: they always load
	}
	_, ok := versions[gvk]
	return ok
}

// Validate takes obj, one object of kind gvk as a JSON decoder into map[string]any gives it
// (integers int64, other numbers float64, as the API server decodes), through what the API server
// does with a create of it before calling admission webhooks, and returns what it refuses: a
// decoding error (unknown fields, metadata of the wrong shape) that ends the request as the API
// server's 400 does, else the field errors of its 422, each with the full path of the version
// written. obj is changed as the API server changes it: pruned, defaulted, without status. gvk
// must be [Served].
func Validate(gvk schema.GroupVersionKind, obj map[string]any) (field.ErrorList, error) {
	versions, err := loadVersions()
	if err != nil {
		return nil, err
	}
	v, ok := versions[gvk]
	if !ok {
		return nil, fmt.Errorf("%s is not served by the SMI CRDs", gvk)
	}
	if err := v.decode(obj); err != nil {
		return nil, err
	}
	structuraldefaulting.Default(obj, v.structural)
	if v.hasStatus {
		delete(obj, "status")
	}
	return v.validate(obj), nil
}

// decode is what unstructuredSchemaCoercer.apply does to a request's object, with unknown field
// paths returned as kubectl's default --validate=strict makes the API server return them.
func (v *version) decode(obj map[string]any) error {
	kind, hasKind := obj["kind"]
	apiVersion, hasAPIVersion := obj["apiVersion"]
	objectMeta, hasMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return err
	}
	unknown = append(unknown, structuralpruning.PruneWithOptions(obj, v.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	coerceErr, paths := schemaobjectmeta.CoerceWithOptions(nil, obj, v.structural, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if coerceErr != nil {
		return coerceErr
	}
	unknown = append(unknown, paths...)
	if len(unknown) > 0 {
		errs := make([]error, len(unknown))
		for i, path := range unknown {
			errs[i] = fmt.Errorf("unknown field %q", path)
		}
		return runtime.NewStrictDecodingError(errs)
	}
	// Pruning removed what the schema does not list, the type fields and metadata included;
	// the API server puts them back as read.
	if hasKind {
		obj["kind"] = kind
	}
	if hasAPIVersion {
		obj["apiVersion"] = apiVersion
	}
	if hasMeta {
		return schemaobjectmeta.SetObjectMeta(obj, objectMeta)
	}
	return nil
}

// validate is customResourceStrategy.Validate for a create.
func (v *version) validate(obj map[string]any) field.ErrorList {
	ctx := context.Background()
	if errs := v.validateTypeMeta(obj); len(errs) > 0 {
		return errs
	}
	errs := v.validateObjectMeta(ctx, obj)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, v.schemaValidator)...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, v.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	if v.celValidator == nil { // a version without CEL rules: nothing skipped, nothing said
		return errs
	}
	if blocking := blockingError(errs); blocking != nil {
		return append(errs, blocking)
	}
	celErrs, _ := v.celValidator.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// validateTypeMeta is customResourceValidator.ValidateTypeMeta: the object must be of the kind and
// version whose endpoint it is sent to.
func (v *version) validateTypeMeta(obj map[string]any) field.ErrorList {
	var errs field.ErrorList
	if kind, _ := obj["kind"].(string); kind != v.kind.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), kind, "must be "+v.kind.Kind))
	}
	if apiVersion, _ := obj["apiVersion"].(string); apiVersion != v.kind.GroupVersion().String() {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), apiVersion, "must be "+v.kind.GroupVersion().String()))
	}
	return errs
}

// validateObjectMeta is customResourceValidator.validateObjectMetaDeclaratively for a create: every
// custom resource's name is a DNS-1123 subdomain.
func (v *version) validateObjectMeta(ctx context.Context, obj map[string]any) field.ErrorList {
	path := field.NewPath("metadata")
	meta := &metav1.ObjectMeta{}
	if raw, ok := obj["metadata"]; ok && raw != nil {
		m, ok := raw.(map[string]any)
		if !ok {
			return field.ErrorList{field.Invalid(path, raw, fmt.Sprintf("expected map[string]interface{}, got %T", raw))}
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
			return field.ErrorList{field.Invalid(path, raw, err.Error())}
		}
	}
	return apivalidation.ValidateObjectMetaDeclaratively(ctx, operation.Create, meta, nil, v.namespaced,
		apivalidation.NameIsDNSSubdomain, path, utilfeature.DefaultFeatureGate.Enabled(features.DeclarativeValidationBeta))
}

// blockingError is the strategy's hasBlockingErr: after errors of these types the object is too
// far from its schema for CEL rules to be evaluated, and the API server says it skipped them.
func blockingError(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return nil
}

// loadVersions reads the embedded CRDs once into what the API server builds for each served
// version (customresource_handler.go's getOrCreateServingInfoFor).
var loadVersions = sync.OnceValues(func() (map[schema.GroupVersionKind]*version, error) {
	files, err := fs.Glob(crd.Translated, "bases/*.yaml")
	if err != nil {
		return nil, err
	}
	versions := map[schema.GroupVersionKind]*version{}
	for _, name := range files {
		data, err := crd.Translated.ReadFile(name)
		if err != nil {
			return nil, err
		}
		// Each file is one CRD, after a comment-only document saying it is generated.
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), len(data))
		for {
			var def apiextensionsv1.CustomResourceDefinition
			if err := dec.Decode(&def); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			for _, served := range def.Spec.Versions {
				if !served.Served {
					continue
				}
				v, err := newVersion(&def, served)
				if err != nil {
					return nil, fmt.Errorf("%s, version %s: %w", name, served.Name, err)
				}
				versions[v.kind] = v
			}
		}
	}
	return versions, nil
})

func newVersion(def *apiextensionsv1.CustomResourceDefinition, served apiextensionsv1.CustomResourceDefinitionVersion) (*version, error) {
	if served.Schema == nil {
		return nil, fmt.Errorf("no schema: every SMI CRD version has one")
	}
	var internal apiextensionsinternal.CustomResourceValidation
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(served.Schema, &internal, nil); err != nil {
		return nil, err
	}
	structural, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, err
	}
	if err := structuraldefaulting.PruneDefaults(structural); err != nil {
		return nil, err
	}
	schemaValidator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, err
	}
	return &version{
		kind:            schema.GroupVersionKind{Group: def.Spec.Group, Version: served.Name, Kind: def.Spec.Names.Kind},
		namespaced:      def.Spec.Scope == apiextensionsv1.NamespaceScoped,
		structural:      structural,
		schemaValidator: schemaValidator,
		celValidator:    cel.NewValidator(structural, true, celconfig.PerCallLimit), // nil without CEL rules
		hasStatus:       served.Subresources != nil && served.Subresources.Status != nil,
	}, nil
}
