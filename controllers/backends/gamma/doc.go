// Package gamma is the Gateway API (GAMMA) backend: it writes the routes translators/gamma
// generates from each TrafficSplit (HTTPRoutes, GRPCRoutes, TCPRoutes whose parent is the apex
// Service), with server-side apply, controlled by the split, for whichever mesh reads them
// (Linkerd, Istio, Cilium, Kuma, Consul). It runs only where the cluster serves those kinds
// (the Gateway API's standard channel, v1.6 or later, holds all three); otherwise Start says why
// and the SMIOperator reports BackendUnavailable until they appear.
//
// TrafficTargets are not enforced: the Gateway API has no authorization standard, and no access
// policy is written yet, so each one is reported Programmed=False AccessNotEnforced (the
// translator's diagnostic). Namespaces need nothing.
package gamma
