// Package istio is what the Istio backend does with each SMI kind: Splits and Targets program the
// Istio translator's output (package translators/istio) with server-side apply, controlled by the
// SMI object, and prune what it no longer generates; Targets also keeps the namespaces'
// deny-by-default baseline (the namespace controller's Sink). The watches (SplitWatches,
// TargetWatches, BaselineWatches) reconcile an object again when someone else edits or deletes
// what it generated. The Switch (package backends) runs it.
package istio
