#!/usr/bin/env bash
# Installs the xDS interop clients that are not grpc-go, for test/xdse2e, when they are missing:
# gRPC C-core through Debian's python3-grpcio (bookworm: C-core 1.51, run by Debian's own
# /usr/bin/python3, not a pyenv or venv python that cannot see Debian's dist-packages).
#
# Why Debian's package: it is what a Python (or, through the same C-core, Ruby or PHP) service on a
# stock Debian image runs, an old C-core the operator's output must suit; and Debian's archive is
# one of the only registries our machines reach (PyPI is not).
#
# Needs root (apt-get) only when something is missing. Without root it says so and exits 0, so that
# `make test` still runs for a developer (the interop tests then skip, saying why), unless
# SMI_E2E_NETNS_STRICT is set (CI, which runs as root): then a client that cannot be had fails.
set -euo pipefail

python=/usr/bin/python3
have_grpcio() { [[ -x "${python}" ]] && "${python}" -c 'import grpc' 2>/dev/null; }

if ! have_grpcio; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "interop-deps: python3-grpcio is missing and installing it needs root: apt-get install -y python3-grpcio" >&2
    [[ -z "${SMI_E2E_NETNS_STRICT:-}" ]] && exit 0
    exit 1
  fi
  echo "interop-deps: installing python3-grpcio (gRPC C-core) from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-grpcio >/dev/null
fi
echo "interop-deps: gRPC C-core (python3-grpcio) $("${python}" -c 'import grpc; print(grpc.__version__)')" >&2
