// Package istio is what the Istio backend does with each SMI kind: Splits and Targets program the
// Istio translator's output (package translators/istio) with server-side apply, controlled by the
// SMI object, and prune what it no longer generates; Targets also keeps the namespaces'
// deny-by-default baseline (the namespace controller's Sink). The watches (SplitWatches,
// TargetWatches, BaselineWatches) reconcile an object again when someone else edits or deletes
// what it generated. Backend is the backend the Switch (package backends) runs: its instances
// program with one set of mesh settings, its Clean deletes every object the operator generated
// once another backend is in charge, but the access policy (Access) while the gamma backend,
// with spec.gamma.accessPolicy istio, writes the same objects. A fixed --backend=istio wires
// Splits and Targets directly.
package istio
