#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time each (default 30s). `make test` already
# runs their seed corpora as ordinary tests; this explores beyond them.
set -euo pipefail
fuzztime="${1:-30s}"
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "${pkg}" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: ${pkg} ${target} for ${fuzztime}"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "${fuzztime}" "${pkg}"
  done
done
