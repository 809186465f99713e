// Package translate is the "smi-operator translate" command: the operator's translation, run on
// manifest files with no cluster, so that a pull request or a GitOps repository can be reviewed for
// what it will program before anything is applied.
//
//	smi-operator translate [flags] FILE|DIR|- ...
//
// It reads SMI objects of every served version and the operator's TrafficPolicies (whose
// timeouts, retries, faults, connection limits, ejection and load balancing show in the output
// of both backends), with the Services, EndpointSlices, Deployments,
// StatefulSets and DaemonSets they need (and, for the xDS backend's secure naming, the Pods the
// EndpointSlices name: a mutual-TLS cluster accepts the ServiceAccounts of its endpoints' Pods,
// and none when they are not given), from YAML or JSON manifests (package manifest: "---"
// separated YAML or concatenated JSON; "-" is standard input; a directory is read recursively for
// *.yaml, *.yml and *.json in name order, leaving out hidden entries and kustomization files), and
// prints what the operator would program with the same flags: with --backend=istio (the default)
// the Istio objects as a YAML stream, with --backend=gamma the Gateway API routes (HTTPRoute,
// GRPCRoute, TCPRoute with Service parents, for GAMMA meshes) as a YAML stream, with
// --backend=xds the xDS resources its own control plane would serve as one JSON document
// (--proxy=grpc, envoy or all), with --backend=none nothing.
// Output is deterministic: the same input gives the same bytes whatever the order of files and
// documents (but for which of two definitions of one object comes last: applying both, the later
// wins), so that it can be committed and diffed. Objects that name no namespace are put in
// --namespace ("default" unless given), as kubectl apply puts them in its context's namespace; with
// --namespace given, an object naming another one is refused, as kubectl refuses it.
//
// The why: the same code decides both times. Objects go through the checks the cluster applies
// (for SMI objects, what the API server does with a create against the generated CRDs, embedded
// in the binary: package crdvalidation, with apiextensions-apiserver's own schema, list-type and
// CEL validation; then, if that accepts them, the validating webhook's
// apis/smi/validation.ValidateJSON on the JSON the webhook would receive; for TrafficPolicies
// their CRD alone, errors sorted by field; for the other kinds,
// object metadata and strict fields), conversion to the hub (mesh.Snapshot.Add), mesh.Build with the
// manager's settings flags (--trust-domain, --cluster-domain, --access-mode, --mtls, same
// defaults) and the backend's translator, the very functions the controllers call. A reviewer sees
// what will be written and which conditions the SMI objects will get, in the words the cluster
// would use.
//
// # Standard error and exit codes
//
// Standard error gets one line per finding, "<level>: <file>:<line> (document <n>): <object>:
// <text>": first what the cluster would say of the input, in input order, then the diagnostics
// (mesh.Build's and the backend's, merged and sorted as mesh.SortDiagnostics does), each as the
// condition it turns False: "<Condition>=False <Reason>: <message>".
//
//   - "error:" input the cluster would refuse: a document that is not YAML or JSON or not an
//     object, a missing kind or apiVersion, an SMI kind or version the cluster does not serve
//     ("no matches for kind"), a kind of a built-in API group that does not exist, invalid
//     metadata, a field the CRD schema or the webhook refuses (each field.Error as the API server
//     prints it, with the full path in the version written: "spec.backends[0].weight: Required
//     value"), an unknown field (strict decoding); and every diagnostic
//     of severity Error: an SMI object that would not be programmed (Accepted=False Conflicted,
//     ResolvedRefs=False ApexNotFound, ...).
//   - "warning:" diagnostics of severity Warning (part of an object ignored, the rest in effect),
//     an object that replaces an earlier one with the same kind, namespace and name (applying both,
//     the later wins), and an input without any object.
//   - "note:" objects of kinds the translation does not read (ConfigMaps, Namespaces, Istio
//     objects, other CRDs: the cluster would take them, they change nothing here), and skipped
//     kustomization files.
//
// Exit code 0: no "error:" line (warnings allowed). 1: at least one "error:" line; standard output
// still holds what the accepted objects produce, as the cluster would program them once it has
// refused the others. 2: bad flags or arguments, or an input that cannot be read (missing file,
// unreadable directory); nothing is written to standard output.
//
// # What differs from the cluster
//
//   - Owner references: the operator makes each generated object controlled by its SMI object
//     (the namespace-wide smi-default-deny by the Namespace), which needs the UID the API server
//     assigns; offline input has none, so they are left out. The labels naming the source
//     (app.kubernetes.io/managed-by, smi.smi-operator.io/source-kind and source-name) are there,
//     and the rest is what the operator applies: its JSON without status and server-owned
//     metadata.
//   - Conflicts with objects already in the cluster (Accepted=False Conflicted because an object
//     of a wanted name belongs to someone else) cannot be seen. Conflicts between TrafficSplits
//     on one apex are settled as the cluster does, by creationTimestamp then name; input without
//     timestamps (the usual case) is settled by name, where the cluster would take creation order.
//   - Updates are not modelled: the ratcheting of errors an object already had (the CRD
//     schemas' and the webhook's) does not apply, every object is judged as created. Kinds other
//     than SMI's are checked for metadata and fields only, not for their own API validation (a
//     Service's ports, a Deployment's template).
//   - The API server defaults nothing here: a Service without clusterIP has no virtual IP, so Envoy
//     sidecars get no outbound chain for it (headless); give clusterIP in the input to see them.
//   - The whole input is translated at once; the controllers translate one SMI object at a time
//     with what it references. The model is the same, so are the generated objects and the
//     diagnostics on TrafficSplits and TrafficTargets. Diagnostics on HTTPRouteGroups, TCPRoutes
//     and UDPRoutes are printed too, though no controller writes those objects' status: each is
//     also reported on the objects referring to them.
//   - The xDS backend's access diagnostics (UDP grants not enforced, "grpc-" header matches) are
//     printed as xds.Translate reports them.
//   - Per-identity xDS pieces are rendered for every TrafficTarget destination and for any other
//     identity: the gRPC server Listener (for listening address 0.0.0.0:<port>, one per port the
//     identity's TrafficTargets name, else 8080, or the ports of --grpc-server-ports; a server
//     listening elsewhere gets the same Listener with its own address) and the Envoy inbound
//     listener. SDS secrets (workload certificates) come from the operator's CA at run time and
//     are not rendered.
package translate
