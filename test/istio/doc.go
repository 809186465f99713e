// Package istio is the module that builds Istio's own code for the operator's tests: today its
// config validation (istio.io/istio/pkg/config/validation), which every object the Istio
// translator emits must pass. It is a module of its own so that the operator's go.mod stays free of
// istio.io/istio and its dependencies; `make test` runs it.
package istio
