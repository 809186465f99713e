// Package accesscheck is the shared machinery of the access property tests (issue 12): for random
// valid SMI input, the requests a backend allows are never more than the mesh model's access rules
// allow.
//
// It holds
//
//   - a generator of random SMI input ([Generate]): TrafficTargets of every access version
//     (v1alpha1 and v1alpha2 with or without a destination port) between ServiceAccounts of a few
//     namespaces, the HTTPRouteGroups (literal, prefix-like and arbitrary path regexes, methods,
//     "*", header regexes), TCPRoutes and UDPRoutes they name, Deployments running as those
//     ServiceAccounts, and settings in both access modes. It also keeps, for each TrafficTarget, the
//     requests it was written for, so that probes hit the rules often instead of being denied
//     by chance;
//   - request probes derived from a case ([Case.Requests]): the rules' own principals, ports,
//     paths, methods and headers, their neighbours (other ports, other paths, other sources,
//     no identity at all, a source whose name extends an allowed one) and random ones;
//   - three evaluators: the model's meaning ([IRVerdict]), Istio AuthorizationPolicies
//     ([IstioAllows]) and Envoy or proxyless gRPC Listeners with their RBAC filters
//     ([NewListener]). The backend evaluators implement the documented semantics of the parts of
//     the API the translators write and fail the test on anything else, so a field they do not
//     understand cannot make a widening pass unnoticed;
//   - the property itself ([Check]) with a shrinker that reduces a failing case to the objects
//     the counterexample needs.
//
// The evaluators are references for tests, not a second implementation of the translators: they
// read the backend's output as the proxy would, never the model.
package accesscheck
