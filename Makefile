# smi-operator — run `make help` for the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Pinned tools, run through `go run` so nothing is installed by hand.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= go run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
export CONTROLLER_GEN

# kustomize builds config/manifests for the OLM bundle; pinned like controller-gen.
KUSTOMIZE ?= go run sigs.k8s.io/kustomize/kustomize/v5@v5.8.2

# The release the OLM bundle and catalog describe (make bundle). BUNDLE_REPLACES names the CSV this
# release upgrades (smi-operator.vX.Y.Z) and BUNDLE_SKIP_RANGE the versions that may jump to it
# (">=0.1.0 <0.2.0"); the first release has neither.
OPERATOR_VERSION ?= 0.1.0
OPERATOR_IMAGE ?= ghcr.io/smi-operator/smi-operator:v$(OPERATOR_VERSION)
BUNDLE_IMAGE ?= ghcr.io/smi-operator/smi-operator-bundle:v$(OPERATOR_VERSION)
BUNDLE_CHANNELS ?= stable
BUNDLE_DEFAULT_CHANNEL ?= stable
BUNDLE_REPLACES ?=
BUNDLE_SKIP_RANGE ?=

# Versions of the test control plane built from the Go module proxy (hack/control-plane.sh).
export KUBERNETES_VERSION ?= v1.37.2
export ETCD_VERSION ?= v3.7.0

GO_TEST_FLAGS ?= -count=1 -timeout=45m

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: generate
generate: ## Generate deepcopy code for the operator's Go types (apis/smi, apis/v1alpha1).
	$(CONTROLLER_GEN) object paths=./apis/...

.PHONY: manifests
manifests: ## Generate the CRDs (SMI and the operator's own), RBAC and webhook configuration under config/.
	hack/gen-crds.sh config/crd/bases
	$(CONTROLLER_GEN) crd paths=./apis/v1alpha1/... paths=./apis/policy/... output:crd:dir=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role webhook paths=./... output:rbac:dir=config/rbac output:webhook:dir=config/webhook

.PHONY: bundle
bundle: ## Generate the OLM bundle (bundle/) and add it to the file-based catalog (catalog/smi-operator/).
	$(KUSTOMIZE) build config/manifests | go run ./hack/bundlegen -out bundle -catalog catalog/smi-operator \
	  -version $(OPERATOR_VERSION) -image $(OPERATOR_IMAGE) -bundle-image $(BUNDLE_IMAGE) \
	  -channels $(BUNDLE_CHANNELS) -default-channel $(BUNDLE_DEFAULT_CHANNEL) \
	  -replaces "$(BUNDLE_REPLACES)" -skip-range "$(BUNDLE_SKIP_RANGE)"

.PHONY: verify-generated
verify-generated: ## Fail when `make generate manifests bundle` would change the tree.
	hack/verify-generated.sh

.PHONY: control-plane
control-plane: ## Build kube-apiserver and etcd into the cache outside the clone (once per version).
	hack/control-plane.sh >/dev/null

.PHONY: istiod
istiod: ## Build istiod (pilot-discovery, at the istio.io/istio version test/istio pins) into the same cache (once per version).
	hack/control-plane.sh istiod >/dev/null

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet, and fail on unformatted files.
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...

.PHONY: interop-deps
interop-deps: ## Install the non-grpc-go xDS clients test/xdse2e runs (Debian's python3-grpcio: gRPC C-core; grpc-js from npm into ~/.cache), if missing.
	hack/interop-deps.sh

.PHONY: capture-deps
capture-deps: ## Install the iptables tools (Debian's iptables) the traffic-capture test runs in its network namespaces, if missing.
	hack/capture-deps.sh

.PHONY: test
test: control-plane istiod interop-deps capture-deps vet verify-generated ## Run every test: unit, golden, fuzz seeds, envtest suites, Istio's validation, the Istio e2e suite.
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test $(GO_TEST_FLAGS) ./...
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" hack/test-istio.sh $(GO_TEST_FLAGS)

.PHONY: test-istio
test-istio: control-plane istiod ## Run module test/istio: istiod's validation of every Istio object the translator emits, and the Istio e2e suite on a real istiod.
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" hack/test-istio.sh $(GO_TEST_FLAGS)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	hack/fuzz.sh $${FUZZTIME:-30s}

.PHONY: build
build: ## Build the operator binary into bin/.
	go build -o bin/smi-operator .

.PHONY: run
run: build control-plane ## Run the operator: against the current kubeconfig's cluster, else an embedded one. ARGS="--backend=xds" passes flags.
	hack/run.sh $(ARGS)

.PHONY: bench
bench: control-plane istiod ## Run the scale benchmarks (Istio, then xDS, then flips on a real istiod) on a real API server and print their figures.
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 90m ./test/bench/...
	cd test/istio && KUBEBUILDER_ASSETS="$$(../../hack/control-plane.sh)" go test -run '^$$' -bench . -benchtime 1x -timeout 60m ./istioe2e/
