// Package xds is what the operator's own xDS backend does with each SMI kind: Splits and Targets
// hand the model's splits and access rules to the xDS server (package xds/server), which builds
// the resources when proxies ask, and report the proxies that refuse them; Targets also tells the
// server where access applies (the namespace controller's Sink). NewServer builds the server from
// a Config (main.go's flags, or an SMIOperator's spec.xds through ConfigFrom) with its built-in
// CA (which signs the pod agents' CSRs), token reviews and serving certificate; TrustBundles keeps
// the CA's trust bundle, the pod agents' anchor, in a ConfigMap of every namespace the namespace
// controller hands Targets. Backend is the backend the Switch (package backends)
// runs: each instance is one server, replaced when its configuration changes, answering proxies
// only once it holds every object, and draining for the swap grace period when retired. A fixed
// --backend=xds builds one server with NewServer.
package xds
