// Package crd embeds the SMI CustomResourceDefinitions that `make manifests` generates into
// bases/ (hack/gen-crds.sh), and the operator's TrafficPolicy CRD (controller-gen), so that a
// program can apply the very schemas the API server applies:
// `smi-operator translate` validates offline against them (cmd/translate/crdvalidation),
// and a copy could drift from what `kubectl apply -k config/crd` installs where the embedded files
// cannot. The operator's own SMIOperator CRD is left out: nothing offline reads it.
package crd

import "embed"

// Translated holds bases/<group>_<plural>.yaml for every SMI group and for the TrafficPolicy: the
// kinds the translation reads that CRDs define.
//
//go:embed bases/*.smi-spec.io_*.yaml bases/policy.smi-operator.io_*.yaml
var Translated embed.FS
