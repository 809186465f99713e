#!/usr/bin/env bash
# Regenerates code and manifests in a scratch copy of the tree (tracked and untracked, not ignored
# files) and fails if that changes anything: generated files are never hand-edited, and
# `make generate manifests bundle` on a clean tree must leave no diff (the bundle and catalog are
# generated from the CRDs and RBAC that manifests writes, so they run in that order).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT
cd "${root}"
git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "${scratch}/"
cd "${scratch}"
git init -q . && git add -A && git -c user.name=verify -c user.email=verify@localhost commit -qm snapshot
make --no-print-directory generate manifests bundle >/dev/null
if [[ -n "$(git status --porcelain)" ]]; then
  git --no-pager diff --stat; git status --porcelain
  echo "verify-generated: generated files are stale; run 'make generate manifests bundle' and commit the result" >&2
  exit 1
fi
echo "verify-generated: generated code and manifests are up to date"
