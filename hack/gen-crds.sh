#!/usr/bin/env bash
# Generates the SMI CRDs: controller-gen (pinned, through go run) once per smi-sdk-go version
# package, then hack/crdgen merges the versions and adds status, storage, conversion and validation.
# Usage: hack/gen-crds.sh <output folder>    (make manifests passes config/crd/bases)
set -euo pipefail
out="${1:?usage: hack/gen-crds.sh <output folder>}"
controller_gen="${CONTROLLER_GEN:-go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0}"
sdk=github.com/servicemeshinterface/smi-sdk-go/pkg/apis
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

for gv in split/v1alpha1 split/v1alpha2 split/v1alpha3 split/v1alpha4 \
          access/v1alpha1 access/v1alpha2 access/v1alpha3 \
          specs/v1alpha1 specs/v1alpha2 specs/v1alpha3 specs/v1alpha4; do
  ${controller_gen} crd paths="${sdk}/${gv}" output:crd:dir="${work}/smi/${gv}"
done
${controller_gen} crd paths=./hack/crdgen/internal/v1 output:crd:dir="${work}/status"

rm -f "${out}"/*.smi-spec.io_*.yaml
go run ./hack/crdgen -in "${work}/smi" -status "${work}/status/statusschema.smi-operator.io_statuscarriers.yaml" -out "${out}"
