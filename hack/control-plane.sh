#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver and etcd) from the Go module proxy into a cache
# folder outside the clone, keyed by version, and prints that folder (for KUBEBUILDER_ASSETS).
#
# Why build: this project's machines reach only the Go module proxy, so setup-envtest's download
# cannot work. A fresh clone (what CI runs) reuses binaries an earlier run built, because the cache
# lives under the user's cache directory, not in the clone.
#
#   SMI_OPERATOR_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/smi-operator)
#   KUBERNETES_VERSION      default v1.37.2 (its staging modules are pinned at v0.<minor>.<patch>)
#   ETCD_VERSION            default v3.7.0
#   ISTIO_VERSION           default: the istio.io/istio version test/istio/go.mod requires (istiod's
#                           validators there and the istiod binary here come from the same commit;
#                           the binary is built with that commit's own go.mod)
#
# Usage: hack/control-plane.sh [--print-dir] [istiod]
#   --print-dir  prints the folder without building
#   istiod       the folder of istiod (pilot-discovery, built from istio.io/istio at ISTIO_VERSION with
#                the versions of istio's own go.mod, as Istio releases it) instead of kube-apiserver's
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"
cache_root="${SMI_OPERATOR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/smi-operator}"
assets="${cache_root}/control-plane/kubernetes-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}"

print_dir=false component=kubernetes
for arg in "$@"; do
  case "${arg}" in
    --print-dir) print_dir=true ;;
    istiod) component=istiod ;;
    *) echo "usage: $0 [--print-dir] [istiod]" >&2; exit 2 ;;
  esac
done
if [[ "${component}" == istiod ]]; then
  if [[ -z "${ISTIO_VERSION:-}" ]]; then
    ISTIO_VERSION="$(sed -n 's#^[[:space:]]*istio\.io/istio \(v[^[:space:]]*\).*#\1#p' \
      "$(dirname "$0")/../test/istio/go.mod")"
    [[ -n "${ISTIO_VERSION}" ]] || { echo "control-plane: no istio.io/istio in test/istio/go.mod" >&2; exit 1; }
  fi
  assets="${cache_root}/control-plane/istio-${ISTIO_VERSION}"
fi

if [[ "${print_dir}" == true ]]; then
  echo "${assets}"
  exit 0
fi

log() { echo "control-plane: $*" >&2; }

# build_in_module <binary> <package> <module requirements...> -- <replace lines...>
# Builds <package> in a throw-away module so the project's own go.mod never sees k8s.io/kubernetes.
build_binary() {
  local name="$1" pkg="$2" gomod="$3" ldflags="$4"
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  printf '%s\n' "${gomod}" >"${work}/go.mod"
  log "building ${name} (${pkg}); each line below is one compiled package"
  local start=$SECONDS count=0
  (cd "${work}" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "${ldflags}" \
      -o "${work}/${name}" "${pkg}" 2>&1) | while IFS= read -r line; do
    count=$((count + 1))
    # Progress without flooding logs: one line every 100 packages, plus errors as they come.
    if [[ "${line}" == *": "* || "${line}" == "go: "* ]]; then echo "  ${line}" >&2
    elif (( count % 100 == 0 )); then log "  ${name}: ${count} packages compiled ($((SECONDS - start))s)"; fi
  done
  [[ -x "${work}/${name}" ]] || { log "building ${name} failed"; return 1; }
  mkdir -p "${assets}"
  mv "${work}/${name}" "${assets}/${name}.tmp" && mv "${assets}/${name}.tmp" "${assets}/${name}"
  log "built ${name} in $((SECONDS - start))s -> ${assets}/${name}"
}

go_version="$(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"

if [[ "${component}" == istiod ]]; then
  if [[ ! -x "${assets}/pilot-discovery" ]]; then
    log "istiod (pilot-discovery) is not cached for istio.io/istio ${ISTIO_VERSION}: building it from source."
    log "This takes about 8-10 minutes on 2 cores, once per Istio version; later runs reuse ${assets}."
    # Only istio.io/istio is required, so every other version is the one istio's own go.mod pins:
    # the binary is built from what Istio itself builds and tests at that commit.
    build_binary pilot-discovery istio.io/istio/pilot/cmd/pilot-discovery "module smi-operator.local/istiod-build
go ${go_version}
require istio.io/istio ${ISTIO_VERSION}" ""
  fi
  echo "${assets}"
  exit 0
fi

if [[ ! -x "${assets}/etcd" ]]; then
  build_binary etcd go.etcd.io/etcd/server/v3 "module smi-operator.local/etcd-build
go ${go_version}
require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}" ""
fi

if [[ ! -x "${assets}/kube-apiserver" ]]; then
  log "kube-apiserver is not cached for ${KUBERNETES_VERSION}: building it from source."
  log "This takes about 15 minutes on 2 cores, once per Kubernetes version; later runs reuse ${assets}."
  # k8s.io/kubernetes replaces its staging modules with local paths; a module that depends on it must
  # replace each of them with the published v0.<minor>.<patch> instead. Read the list from its go.mod.
  kgomod="$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  replaces="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "${kgomod}" \
    | sort -u | sed "s#.*#replace & => & ${staging_version}#")"
  [[ -n "${replaces}" ]] || { log "found no staging replaces in ${kgomod}"; exit 1; }
  minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  build_binary kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "module smi-operator.local/kube-apiserver-build
go ${go_version}
require k8s.io/kubernetes ${KUBERNETES_VERSION}
${replaces}" "-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
fi

echo "${assets}"
