#!/usr/bin/env bash
# make run: runs the operator against the current kubeconfig's cluster when one answers; otherwise
# starts the embedded control plane (hack/localrun), installs the CRDs and webhook configuration
# there, runs the operator against it and prints the kubeconfig to use with kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."

if kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "run: using the cluster of the current kubeconfig ($(kubectl config current-context))"
  echo "run: webhooks are off: that API server cannot reach this process. Deploy with 'kubectl apply -k config/default' for conversion and validation."
  exec bin/smi-operator --cert-rotation=false --enable-webhooks=false \
    --metrics-bind-address=:8082 --metrics-secure=false "$@"
fi

echo "run: no cluster answers on the current kubeconfig; starting the embedded control plane"
export KUBEBUILDER_ASSETS="$(hack/control-plane.sh)"
go build -o bin/localrun ./hack/localrun
exec bin/localrun --operator bin/smi-operator -- "$@"
