package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/peer"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/kubernetes"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// DefaultCacheTTL is how long a successful review is reused when [Options.CacheTTL] is zero.
const DefaultCacheTTL = time.Minute

// DefaultMaxConcurrentReviews bounds the TokenReviews in flight when
// [Options.MaxConcurrentReviews] is zero.
const DefaultMaxConcurrentReviews = 32

// DefaultMaxReviewsPerPeer bounds the TokenReviews in flight for one source address when
// [Options.MaxReviewsPerPeer] is zero: a pod's agent needs one for its ADS stream and one for its
// certificate, the first time its token is seen.
const DefaultMaxReviewsPerPeer = 2

// ErrTooManyReviews is wrapped by the error of a token that would need a TokenReview while
// [Options.MaxConcurrentReviews] are in flight, or [Options.MaxReviewsPerPeer] for the caller's
// address (then [ErrTooManyPeerReviews] is wrapped too): the caller may try again (an xDS server
// answers codes.Unavailable).
var ErrTooManyReviews = errors.New("too many token reviews in flight")

// ErrTooManyPeerReviews is wrapped by the error of a token that would need a TokenReview while
// [Options.MaxReviewsPerPeer] are in flight for the caller's address. It wraps [ErrTooManyReviews].
var ErrTooManyPeerReviews = fmt.Errorf("%w from one address", ErrTooManyReviews)

// ErrUnauthenticated is wrapped by every error that means "this caller is not let in" (no,
// malformed, invalid or unsuitable token), as opposed to failing to ask the API server. An xDS
// server maps it to codes.Unauthenticated and anything else to codes.Unavailable.
var ErrUnauthenticated = errors.New("unauthenticated")

// Identity is the ServiceAccount a token was issued to.
type Identity struct {
	Namespace      string
	ServiceAccount string
}

func (id Identity) String() string { return id.Namespace + "/" + id.ServiceAccount }

// Caller is what a token proves: the ServiceAccount it was issued to and, for a token bound to a
// pod (kubelet projects such tokens), that pod. Pods of one ServiceAccount share its Identity, and
// with it everything an identity decides (its certificate, its configuration), but are each a
// caller of their own, for what is counted per caller.
type Caller struct {
	Identity Identity
	// Pod is the UID of the pod the token is bound to, which existed when the API server reviewed
	// the token (a review is reused for Options.CacheTTL); empty for a token bound to none (a
	// TokenRequest naming no pod, a Secret's token).
	Pod types.UID
}

func (c Caller) String() string {
	if c.Pod == "" {
		return "ServiceAccount " + c.Identity.String()
	}
	return fmt.Sprintf("ServiceAccount %s (pod %s)", c.Identity, c.Pod)
}

// Valid says whether the identity is one Kubernetes could have: a namespace name (an RFC 1123
// label) and a ServiceAccount name (an RFC 1123 subdomain).
func (id Identity) Valid() bool {
	return validation.IsDNS1123Label(id.Namespace) == nil && validation.IsDNS1123Subdomain(id.ServiceAccount) == nil
}

// Options configure an [Authenticator].
type Options struct {
	// Audiences accepted; a token must be bound to at least one. Required.
	Audiences []string
	// CacheTTL is how long a successful review is reused; DefaultCacheTTL when zero, no caching
	// when negative.
	CacheTTL time.Duration
	// MaxConcurrentReviews bounds the TokenReviews in flight; DefaultMaxConcurrentReviews when
	// zero. Anyone who reaches the server can send tokens, and each one not in the cache costs a
	// review: past the bound a token is refused at once (ErrTooManyReviews) rather than queued on
	// the client's rate limit, goroutines and waits piling up behind it.
	MaxConcurrentReviews int
	// MaxReviewsPerPeer bounds the TokenReviews in flight for the calls from one network address
	// (of the gRPC peer in the call's context, whatever its port); DefaultMaxReviewsPerPeer when
	// zero.
	MaxReviewsPerPeer int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Authenticator checks ServiceAccount tokens with the TokenReview API. It is safe for concurrent
// use.
type Authenticator struct {
	client kubernetes.Interface
	opts   Options
	// reviews holds a token per TokenReview in flight.
	reviews chan struct{}

	peersMu sync.Mutex
	// peerReviews counts the TokenReviews in flight by source address; an address with none is
	// not in it.
	peerReviews map[netip.Addr]int

	mu        sync.Mutex
	cache     map[[sha256.Size]byte]cached // by hash of the token: no tokens kept in memory
	nextSweep time.Time
}

type cached struct {
	caller  Caller
	expires time.Time
}

// New returns an Authenticator that reviews tokens through client.
func New(client kubernetes.Interface, opts Options) (*Authenticator, error) {
	if len(opts.Audiences) == 0 || slices.Contains(opts.Audiences, "") {
		return nil, errors.New("auth: at least one audience is required, and audiences cannot be empty")
	}
	opts.Audiences = slices.Clone(opts.Audiences)
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxConcurrentReviews <= 0 {
		opts.MaxConcurrentReviews = DefaultMaxConcurrentReviews
	}
	if opts.MaxReviewsPerPeer <= 0 {
		opts.MaxReviewsPerPeer = DefaultMaxReviewsPerPeer
	}
	return &Authenticator{client: client, opts: opts, reviews: make(chan struct{}, opts.MaxConcurrentReviews),
		peerReviews: map[netip.Addr]int{}, cache: map[[sha256.Size]byte]cached{}}, nil
}

// Authenticate returns who token proves: the ServiceAccount it was issued to, and the pod it is
// bound to if any. The error wraps
// [ErrUnauthenticated] and says why when the token is refused: not valid (expired, revoked,
// signed by someone else, its ServiceAccount deleted), bound to none of the configured audiences,
// or not a ServiceAccount's.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Caller, error) {
	if token == "" {
		return Caller{}, fmt.Errorf("%w: empty token", ErrUnauthenticated)
	}
	key := sha256.Sum256([]byte(token))
	now := a.opts.Now()
	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.caller, nil
	}

	// The peer's bound first: a source over its share takes none of the total from the others.
	if addr, ok := peerAddr(ctx); ok {
		if !a.startPeerReview(addr) {
			return Caller{}, fmt.Errorf("auth: %w (%s, %d): try again later", ErrTooManyPeerReviews, addr, a.opts.MaxReviewsPerPeer)
		}
		defer a.endPeerReview(addr)
	}
	select {
	case a.reviews <- struct{}{}:
		defer func() { <-a.reviews }()
	default:
		return Caller{}, fmt.Errorf("auth: %w (%d): try again later", ErrTooManyReviews, cap(a.reviews))
	}
	review, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: a.opts.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return Caller{}, fmt.Errorf("auth: reviewing the token: %w", err)
	}
	caller, err := a.check(review.Status)
	if err != nil {
		return Caller{}, err
	}

	if a.opts.CacheTTL > 0 {
		expires := now.Add(a.opts.CacheTTL)
		if exp, ok := tokenExpiry(token); ok && exp.Before(expires) {
			expires = exp
		}
		a.mu.Lock()
		if !now.Before(a.nextSweep) {
			for k, e := range a.cache {
				if !now.Before(e.expires) {
					delete(a.cache, k)
				}
			}
			a.nextSweep = now.Add(a.opts.CacheTTL)
		}
		a.cache[key] = cached{caller: caller, expires: expires}
		a.mu.Unlock()
	}
	return caller, nil
}

// peerAddr is the address of the gRPC peer of the call, without its port; IPv4 however it came.
func peerAddr(ctx context.Context) (netip.Addr, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}, false
	}
	addrPort, err := netip.ParseAddrPort(p.Addr.String())
	if err != nil {
		return netip.Addr{}, false // not an IP peer (a Unix socket's, bufconn's): no address to count by
	}
	return addrPort.Addr().Unmap().WithZone(""), true
}

// startPeerReview counts a review from addr in, unless addr has MaxReviewsPerPeer in flight.
func (a *Authenticator) startPeerReview(addr netip.Addr) bool {
	a.peersMu.Lock()
	defer a.peersMu.Unlock()
	if a.peerReviews[addr] >= a.opts.MaxReviewsPerPeer {
		return false
	}
	a.peerReviews[addr]++
	return true
}

func (a *Authenticator) endPeerReview(addr netip.Addr) {
	a.peersMu.Lock()
	defer a.peersMu.Unlock()
	if a.peerReviews[addr]--; a.peerReviews[addr] == 0 {
		delete(a.peerReviews, addr)
	}
}

// check turns a TokenReview's status into a Caller, or says why it is not one.
func (a *Authenticator) check(st authenticationv1.TokenReviewStatus) (Caller, error) {
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "the token is not valid"
		}
		return Caller{}, fmt.Errorf("%w: %s", ErrUnauthenticated, why)
	}
	// The API server returns the requested audiences the token is bound to. An authenticator
	// that ignores audiences returns none: then the token's audience is unknown, and refused.
	if !slices.ContainsFunc(st.Audiences, func(aud string) bool { return slices.Contains(a.opts.Audiences, aud) }) {
		return Caller{}, fmt.Errorf("%w: the token is not bound to any of the audiences %q (bound to %q)",
			ErrUnauthenticated, a.opts.Audiences, st.Audiences)
	}
	id, err := parseServiceAccountUser(st.User.Username)
	if err != nil {
		return Caller{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	caller := Caller{Identity: id}
	// Set by the API server's ServiceAccount authenticator for a pod-bound token, and only one.
	if uids := st.User.Extra[serviceaccount.PodUIDKey]; len(uids) == 1 {
		caller.Pod = types.UID(uids[0])
	}
	return caller, nil
}

const serviceAccountPrefix = "system:serviceaccount:"

// parseServiceAccountUser splits "system:serviceaccount:<namespace>:<name>".
func parseServiceAccountUser(user string) (Identity, error) {
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	if !ok {
		return Identity{}, fmt.Errorf("user %q is not a ServiceAccount (%s<namespace>:<name>)", user, serviceAccountPrefix)
	}
	ns, name, ok := strings.Cut(rest, ":")
	id := Identity{Namespace: ns, ServiceAccount: name}
	if !ok || !id.Valid() {
		return Identity{}, fmt.Errorf("user %q is not a valid ServiceAccount name", user)
	}
	return id, nil
}

// tokenExpiry reads the exp claim of a JWT without verifying it: it is only used to shorten the
// cache of a token the API server has just accepted.
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Int64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(exp, 0), true
}
