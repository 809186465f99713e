// Package xds is what the operator's own xDS backend does with each SMI kind: Splits and Targets
// hand the model's splits and access rules to the xDS server (package xds/server), which builds
// the resources when proxies ask, and report the proxies that refuse them; Targets also tells the
// server where access applies (the namespace controller's Sink). The Switch (package backends)
// runs it.
package xds
