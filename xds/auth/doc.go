// Package auth authenticates the proxies that open ADS streams to the operator's xDS server, the
// way istiod does: each proxy sends a Kubernetes ServiceAccount token as
// "authorization: Bearer <token>" gRPC metadata, and the server asks the API server whether the
// token is valid with a TokenReview. The ServiceAccount it names is the proxy's identity: it
// decides which certificate the proxy may get (package xds/ca) and which configuration it sees.
// A token bound to a pod (kubelet's projected tokens are) also proves that pod: the [Caller]
// carries its UID, by which the xDS server counts what it limits per workload, never what a
// workload may see or get.
// Without it any process reaching the xDS port could claim any identity and obtain its
// certificate.
//
// Only ServiceAccount users (system:serviceaccount:<namespace>:<name>) are accepted: a certificate
// is issued to a workload identity, and a human's or a node's credentials are not one. Tokens
// must be bound to one of the configured audiences (e.g. a projected token with audience
// "smi-operator-xds"): a proxy then never sends the token it uses for the API server, which the
// xDS server could otherwise replay there.
//
// Successful reviews are cached for a short time (a minute by default, never beyond the token's
// own expiry), so that a reconnect storm after a control plane restart costs one TokenReview per
// token rather than one per stream. Failures are never cached: a token that was refused because
// the API server was briefly unreachable works on the next attempt. The price of the cache is
// that a token revoked (its ServiceAccount or pod deleted) keeps authenticating for at most the
// cache TTL.
//
// Anyone who reaches the xDS port can send tokens, and each token not in the cache costs a
// review: at most Options.MaxConcurrentReviews are in flight, and past that a token is refused
// at once with [ErrTooManyReviews] (an xDS server answers Unavailable, which clients retry), so
// that a flood of tokens piles up neither goroutines nor waits on the client's rate limit. One
// source address (the call's gRPC peer, whatever its port or connection) has at most
// Options.MaxReviewsPerPeer of them, refused the same way past that: a flood from one host leaves
// the rest to the real tokens. A flood from as many addresses as there are reviews in flight
// still fills them, and then a real token not in the cache is refused too, and its caller
// retries; in a cluster, pods have an address each (hostNetwork pods their node's), and a
// Service's ClusterIP keeps the caller's. Callers behind one address translation (masquerading
// of a node's pod traffic, a load balancer that rewrites the source, a sidecar proxy in the
// server's own pod) share one peer's share. Give the Authenticator a client of its own: its rate
// limit is then the reviews' alone.
//
// The [Authenticator] uses a [kubernetes.Interface]: TokenReview is a create-only virtual
// resource, which the manager's cached client would send to the API server unchanged anyway.
package auth
