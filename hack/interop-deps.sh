#!/usr/bin/env bash
# Installs the xDS interop clients that are not grpc-go, for test/xdse2e, when they are missing:
# - gRPC C-core through Debian's python3-grpcio (bookworm: C-core 1.51, run by Debian's own
#   /usr/bin/python3, not a pyenv or venv python that cannot see Debian's dist-packages);
# - grpc-js (@grpc/grpc-js + @grpc/grpc-js-xds from npm, pinned by
#   test/xdse2e/testdata/grpc-js/package-lock.json) into the test cache,
#   ${XDG_CACHE_HOME:-~/.cache}/smi-operator/interop/grpc-js, with `npm ci`: on the first run, and
#   again when the lock changes. Needs the machine's node and npm.
#
# Why Debian's package: it is what a Python (or, through the same C-core, Ruby or PHP) service on a
# stock Debian image runs, an old C-core the operator's output must suit; and Debian's archive is
# one of the only registries our machines reach (PyPI is not).
#
# C-core needs root (apt-get) only when it is missing. A client that cannot be had is reported and
# the script exits 0, so that `make test` still runs for a developer (the interop tests then skip, saying why), unless
# SMI_E2E_NETNS_STRICT is set (CI, which runs as root): then a client that cannot be had fails.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
status=0

python=/usr/bin/python3
have_grpcio() { [[ -x "${python}" ]] && "${python}" -c 'import grpc' 2>/dev/null; }

# missing says a client cannot be had: a failure under SMI_E2E_NETNS_STRICT, else a note.
missing() {
  echo "interop-deps: $*" >&2
  [[ -n "${SMI_E2E_NETNS_STRICT:-}" ]] && status=1
  return 0
}

ccore() {
  if ! have_grpcio; then
    if [[ "$(id -u)" != 0 ]]; then
      missing "python3-grpcio is missing and installing it needs root: apt-get install -y python3-grpcio"
      return 0
    fi
    echo "interop-deps: installing python3-grpcio (gRPC C-core) from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-grpcio >/dev/null
  fi
  echo "interop-deps: gRPC C-core (python3-grpcio) $("${python}" -c 'import grpc; print(grpc.__version__)')" >&2
}

grpcjs() {
  local src="${root}/test/xdse2e/testdata/grpc-js"
  local dir="${XDG_CACHE_HOME:-${HOME}/.cache}/smi-operator/interop/grpc-js"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing "grpc-js needs node and npm (Node.js 20), which are not installed"
    return 0
  fi
  if ! cmp -s "${src}/package-lock.json" "${dir}/package-lock.json" || [[ ! -d "${dir}/node_modules/@grpc/grpc-js-xds" ]]; then
    echo "interop-deps: installing grpc-js (pinned in ${src#"${root}/"}/package-lock.json) into ${dir} (first run, or the lock changed)" >&2
    rm -rf "${dir}"
    mkdir -p "${dir}"
    cp "${src}/package.json" "${src}/package-lock.json" "${dir}/"
    if ! npm ci --prefix "${dir}" --ignore-scripts --no-audit --no-fund --loglevel=error >&2; then
      rm -rf "${dir}"
      missing "npm ci of grpc-js failed"
      return 0
    fi
  fi
  echo "interop-deps: grpc-js $(node -p "require('${dir}/node_modules/@grpc/grpc-js/package.json').version"), grpc-js-xds $(node -p "require('${dir}/node_modules/@grpc/grpc-js-xds/package.json').version") in ${dir}" >&2
}

ccore
grpcjs
exit "${status}"
