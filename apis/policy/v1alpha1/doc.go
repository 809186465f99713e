// Package v1alpha1 is the operator's resilience API, group policy.smi-operator.io: the namespaced
// TrafficPolicy, which attaches request timeouts, retries, circuit breaking, outlier detection,
// fault injection and a load-balancing choice to a Service (or one port of it), the way SMI
// attaches splits to Services. SMI has no API for any of this; both backends program it from the
// same object (package translators/mesh resolves it, translators/istio and translators/xds
// express it).
//
// The CRD refuses what it can when the object is written (OpenAPI types, enums and ranges, CEL
// for durations and unions), with messages the API server prefixes with the field's path. What a
// backend cannot express is not refused here: the policy's status says so.
//
// Conflicts: a Service port is governed by at most one TrafficPolicy. Of the policies whose targets
// overlap (the same Service, and the same port or one of them without a port), the oldest
// (creationTimestamp, then name) wins, as with TrafficSplits on one apex, even when it turns out to
// be broken; every later one is not programmed at all and reports Accepted=False, reason
// Conflicted, naming the winner. Letting validity pick the winner would move traffic between
// policies whenever a Service comes and goes.
//
// +kubebuilder:object:generate=true
// +groupName=policy.smi-operator.io
package v1alpha1
