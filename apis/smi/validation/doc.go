// Package validation checks SMI objects of every served version for what their CRD schemas cannot
// say, and serves the result as a validating admission webhook.
//
// The operator's CRDs already enforce required fields, enums, ranges and list keys, but the webhook
// re-checks the important ones: it must also protect clusters that run someone else's SMI CRDs (the
// ones smi-sdk-go ships have no schema at all), and it is cheap. Everything it rejects would otherwise
// surface only later, as a condition and an Event on an object that does nothing.
//
// # How versions are handled
//
// Each served kind/version is read into a small version-independent form (split.go, access.go,
// routes.go) that remembers where the version keeps its fields: under spec, or at the top level as
// access v1alpha1 and specs v1alpha1/v1alpha2 do, with access v1alpha1 calling its rules "specs".
// One validator per kind then checks the form, so a rule is written once and its errors still carry
// the paths of the user's own version (spec.backends[1].weight, specs[0].kind, matches[0].pathRegex).
//
// # Rules
//
// TrafficSplit (split.smi-spec.io v1alpha1–v1alpha4):
//   - spec.service (the apex) is required and must be a Service name (a DNS-1123 label).
//   - spec.backends must not be empty; each backend's service is required, must be a Service name
//     and may appear only once. The apex listed as one of its own backends is legal.
//   - v1alpha1 weights are quantities: required, non-negative, a whole number of thousandths (they
//     convert to later versions' integer weights as milli-values, "1" = 1000, "500m" = 500) and with
//     a milli-value that fits in an int64. As written they are at most 30 characters with an
//     exponent within ±30, checked before anything parses them: resource.ParseQuantity never
//     finishes on "1e-999999999". v1alpha2+ weights are integers >= 0. The weights' sum must fit in
//     an int64, since traffic shares are computed from it.
//   - spec.matches (v1alpha3+) name HTTPRouteGroups: kind HTTPRouteGroup, apiGroup empty or
//     specs.smi-spec.io, a name, no reference twice.
//
// TrafficTarget (access.smi-spec.io v1alpha1–v1alpha3):
//   - destination and sources are ServiceAccounts (kind ServiceAccount, a ServiceAccount name, a
//     namespace that is a DNS label when set; a port, where the version has one, is 1–65535).
//   - destination.namespace, when set, must be the TrafficTarget's own namespace: a TrafficTarget
//     lives in its destination's namespace, so that only those who may write there can grant
//     access to its workloads. (Unknown namespace, as for a typed object without one: not checked.)
//   - no source twice (an empty source namespace meaning the TrafficTarget's).
//   - rules (specs in v1alpha1) have kind HTTPRouteGroup or TCPRoute, plus UDPRoute in v1alpha3 (the
//     only version that can name one, as UDPRoute exists only in specs v1alpha4), a route name, no
//     kind/name pair twice, and match names that are non-empty and listed once.
//   - v1alpha3 needs at least one rule ("A valid TrafficTarget must specify a destination, at least
//     one rule, and at least one source"): without one it allows no traffic. In v1alpha1 and
//     v1alpha2 rules were optional: a target without them is admitted with a warning.
//
// HTTPRouteGroup (specs.smi-spec.io v1alpha1–v1alpha4):
//   - every match has a name, unique in the group: TrafficTargets refer to matches by name.
//   - methods are RFC 7231 methods (plus PATCH, RFC 5789) or "*", case-sensitive, each once.
//   - pathRegex compiles as RE2 (Go's regexp), and so does every header value.
//   - headers (v1alpha2+) are written as a list of single-entry maps; each entry names exactly one
//     header, whose name is an RFC 7230 token and whose value is a string, and no header appears
//     twice in a match (case-insensitively). The SDK folds the list into a map, so a repeated header
//     would silently lose one of its regexes: raw JSON is read as written for this ([ValidateJSON]
//     and the webhook). A typed object has already lost that order; its header errors use the
//     header name as the path key (headers[user-agent] rather than headers[1]).
//
// TCPRoute and UDPRoute v1alpha4: spec.matches.ports are 1–65535, each once. Earlier TCPRoute
// versions have no fields to check.
//
// # Webhook
//
// [NewWebhook] serves every kind and version above from one handler at [WebhookPath]. It denies
// CREATE and UPDATE with an apierrors.NewInvalid status (so kubectl prints
// `spec.backends[1].weight: Invalid value: ...`) and allows everything else, with admission
// warnings for what it admits but the author should know (a TrafficTarget without rules, in a
// version where they were optional, allows nothing). On UPDATE, an error that
// the old object already had is returned as a warning instead: an object admitted before the
// webhook existed must stay editable (finalizers, labels) and deletable, as with CRD validation
// ratcheting. Objects being deleted are never blocked.
package validation
