#!/usr/bin/env bash
# Runs the tests of module test/istio, which build Istio's own code (istio.io/istio) so that the
# operator's go.mod never requires it: every object the Istio translator emits goes through istiod's
# validation, and test/istio/istioe2e runs the operator and the istiod that hack/control-plane.sh
# builds at the same istio.io/istio version (KUBEBUILDER_ASSETS as for the main module). The first run on a machine compiles istio's validation package and its dependencies
# (several hundred packages, minutes on 2 cores); progress is printed every 100 packages, and the
# Go build cache makes later runs quick.
#
# Usage: hack/test-istio.sh [go test flags...]   (default: -count=1)
set -euo pipefail
cd "$(dirname "$0")/../test/istio"

log() { echo "test-istio: $*" >&2; }

start=$SECONDS count=0
log "compiling the test's packages (istio.io/istio/pkg/config/validation and its dependencies); one progress line every 100 packages"
# go vet compiles every package the tests import, test files included, and -v would not list them;
# go build -v does, once per package actually compiled (cached packages are not listed).
mapfile -t pkgs < <(go list -deps -test ./... | grep -v '^github.com/smi-operator/smi-operator/test/istio')
go build -v "${pkgs[@]}" 2>&1 | while IFS= read -r line; do
  count=$((count + 1))
  if [[ "${line}" == *": "* || "${line}" == "go: "* || "${line}" == "#"* ]]; then echo "  ${line}" >&2
  elif (( count % 100 == 0 )); then log "  ${count} packages compiled ($((SECONDS - start))s)"; fi
done
log "compiled in $((SECONDS - start))s"
go vet ./...
go test "${@:--count=1}" ./...
