#!/usr/bin/env bash
# Installs what the traffic-capture tests (cmd/iptables) need when it is missing: the iptables
# tools (iptables-restore, iptables-save and their ip6tables twins) from Debian's archive, the
# nf_tables variant Debian defaults to. Pods run the operator's `iptables` subcommand in an image
# that carries the same tools.
#
# Installing needs root (apt-get). When the tools cannot be had the script says so and exits 0, so
# that `make test` still runs for a developer (the capture tests then skip, saying why), unless
# SMI_E2E_NETNS_STRICT is set (CI, which runs as root): then it fails.
set -euo pipefail

have() { command -v iptables-restore >/dev/null && command -v ip6tables-restore >/dev/null && command -v iptables-save >/dev/null; }

if ! have; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "capture-deps: the iptables tools are missing and installing them needs root: apt-get install -y iptables" >&2
    [[ -n "${SMI_E2E_NETNS_STRICT:-}" ]] && exit 1
    exit 0
  fi
  echo "capture-deps: installing iptables from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
fi
echo "capture-deps: $(iptables-restore --version 2>&1 | head -n1)" >&2
