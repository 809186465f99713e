package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/peer"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

const audience = "smi-operator-xds"

// reviewer is a fake API server answering TokenReviews from a table of tokens.
type reviewer struct {
	mu       sync.Mutex
	statuses map[string]authenticationv1.TokenReviewStatus
	err      error // returned for every review when set
	reviews  int
	specs    []authenticationv1.TokenReviewSpec
}

func (r *reviewer) client() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.reviews++
		review := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		r.specs = append(r.specs, review.Spec)
		if r.err != nil {
			return true, nil, r.err
		}
		st, ok := r.statuses[review.Spec.Token]
		if !ok {
			st = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		review.Status = st
		return true, review, nil
	})
	return c
}

func (r *reviewer) count() int { r.mu.Lock(); defer r.mu.Unlock(); return r.reviews }

func saStatus(user string, audiences ...string) authenticationv1.TokenReviewStatus {
	return authenticationv1.TokenReviewStatus{
		Authenticated: true,
		User:          authenticationv1.UserInfo{Username: user, Groups: []string{"system:serviceaccounts"}},
		Audiences:     audiences,
	}
}

// podStatus is what the API server answers for a token bound to the pod of that UID.
func podStatus(user, podUID string, audiences ...string) authenticationv1.TokenReviewStatus {
	st := saStatus(user, audiences...)
	st.User.Extra = map[string]authenticationv1.ExtraValue{serviceaccount.PodUIDKey: {podUID}, serviceaccount.PodNameKey: {"web-1"}}
	return st
}

func TestNewValidates(t *testing.T) {
	for _, auds := range [][]string{nil, {}, {""}, {audience, ""}} {
		if _, err := New(fake.NewClientset(), Options{Audiences: auds}); err == nil || !strings.Contains(err.Error(), "audience") {
			t.Errorf("New with audiences %q = %v, want an error", auds, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	r := &reviewer{statuses: map[string]authenticationv1.TokenReviewStatus{
		"good":          saStatus("system:serviceaccount:default:bookbuyer", audience),
		"two-audiences": saStatus("system:serviceaccount:ns-1:sa.with-dots", "other", audience),
		"expired":       {Authenticated: false, Error: "[invalid bearer token, service account token has expired]"},
		"silent":        {Authenticated: false},
		"wrong-aud":     saStatus("system:serviceaccount:default:bookbuyer", "other"),
		"no-aud":        saStatus("system:serviceaccount:default:bookbuyer"),
		"human":         saStatus("alice@example.com", audience),
		"node":          saStatus("system:node:node-1", audience),
		"sa-no-name":    saStatus("system:serviceaccount:default", audience),
		"sa-bad-ns":     saStatus("system:serviceaccount:Default:x", audience),
		"sa-prefix":     saStatus("system:serviceaccounts:default", audience),
		"pod-bound":     podStatus("system:serviceaccount:default:bookbuyer", "uid-1", audience),
	}}
	a, err := New(r.client(), Options{Audiences: []string{audience, "second"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		token   string
		want    Caller
		wantErr string
	}{
		{token: "good", want: Caller{Identity: Identity{"default", "bookbuyer"}}},
		{token: "two-audiences", want: Caller{Identity: Identity{"ns-1", "sa.with-dots"}}},
		{token: "pod-bound", want: Caller{Identity: Identity{"default", "bookbuyer"}, Pod: "uid-1"}},
		{token: "", wantErr: "empty token"},
		{token: "garbage", wantErr: "invalid bearer token"},
		{token: "expired", wantErr: "service account token has expired"},
		{token: "silent", wantErr: "the token is not valid"},
		{token: "wrong-aud", wantErr: `not bound to any of the audiences ["smi-operator-xds" "second"] (bound to ["other"])`},
		{token: "no-aud", wantErr: "not bound to any of the audiences"},
		{token: "human", wantErr: `user "alice@example.com" is not a ServiceAccount`},
		{token: "node", wantErr: `user "system:node:node-1" is not a ServiceAccount`},
		{token: "sa-no-name", wantErr: "is not a valid ServiceAccount name"},
		{token: "sa-bad-ns", wantErr: "is not a valid ServiceAccount name"},
		{token: "sa-prefix", wantErr: "is not a ServiceAccount"},
	} {
		t.Run(tt.token, func(t *testing.T) {
			id, err := a.Authenticate(context.Background(), tt.token)
			if tt.wantErr == "" {
				if err != nil || id != tt.want {
					t.Fatalf("got %v, %v; want %v", id, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, %v; want an error containing %q", id, err, tt.wantErr)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
			if id != (Caller{}) {
				t.Fatalf("a caller (%v) with the error", id)
			}
		})
	}
	// Every review asked for the configured audiences and the token itself.
	for _, spec := range r.specs {
		if !slices.Equal(spec.Audiences, []string{audience, "second"}) {
			t.Errorf("review for %q asked for audiences %q", spec.Token, spec.Audiences)
		}
	}
	if r.count() != 13 {
		t.Errorf("%d reviews, want 13 (none for the empty token)", r.count())
	}
}

// holdingAPIServer is an API server answering TokenReviews from statuses, each review but those
// of cached waiting until release is closed, after telling its token on entered (the fake
// clientset runs one reaction at a time, so it cannot hold two reviews in flight).
func holdingAPIServer(t *testing.T, statuses map[string]authenticationv1.TokenReviewStatus, cached string) (c kubernetes.Interface, entered chan string, release chan struct{}) {
	entered, release = make(chan string, 8), make(chan struct{})
	apiServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		review := &authenticationv1.TokenReview{}
		if err := json.NewDecoder(req.Body).Decode(review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if review.Spec.Token != cached {
			entered <- review.Spec.Token
			<-release
		}
		review.Status = statuses[review.Spec.Token]
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	}))
	t.Cleanup(apiServer.Close)
	// Run before Close, which waits for the reviews held: a test that failed did not release them.
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	clientset, err := kubernetes.NewForConfig(&rest.Config{Host: apiServer.URL, ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	return clientset, entered, release
}

// authenticateInBackground runs Authenticate and sends its error on the channel returned.
func authenticateInBackground(ctx context.Context, a *Authenticator, token string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(ctx, token)
		done <- err
	}()
	return done
}

// awaitReview waits until the API server holds the review of token.
func awaitReview(t *testing.T, entered <-chan string, done <-chan error, token string) {
	t.Helper()
	select {
	case got := <-entered:
		if got != token {
			t.Fatalf("the API server got a review of %q, want %q", got, token)
		}
	case err := <-done:
		t.Fatalf("the review of %q ended before the API server held it: %v", token, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the API server did not get the review of %q", token)
	}
}

// refusedAtOnce checks that the call whose result done carries was refused as "try again" (not
// unauthenticated) without a review reaching the API server.
func refusedAtOnce(t *testing.T, entered <-chan string, done <-chan error, what string) {
	t.Helper()
	select {
	case token := <-entered:
		t.Errorf("%s: the API server got a review of %q, want it refused at once", what, token)
	case err := <-done:
		if !errors.Is(err, ErrTooManyReviews) || errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v; want ErrTooManyReviews, not unauthenticated", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: neither refused nor reviewed", what)
	}
}

// TestReviewsInFlightAreBounded: a token not in the cache costs a TokenReview, and anyone who
// reaches the xDS port can send tokens; beyond MaxConcurrentReviews in flight a token is refused
// at once as "try again" (not unauthenticated), rather than queueing on the client's rate limit
// with the CA's and the trust bundles' API calls behind it. Cached tokens still pass meanwhile.
func TestReviewsInFlightAreBounded(t *testing.T) {
	statuses := map[string]authenticationv1.TokenReviewStatus{
		"cached": saStatus("system:serviceaccount:shop:cached", audience),
		"a":      saStatus("system:serviceaccount:shop:a", audience),
		"b":      saStatus("system:serviceaccount:shop:b", audience),
		"c":      saStatus("system:serviceaccount:shop:c", audience),
	}
	clientset, entered, release := holdingAPIServer(t, statuses, "cached")
	a, err := New(clientset, Options{Audiences: []string{audience}, MaxConcurrentReviews: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Authenticate(ctx, "cached"); err != nil {
		t.Fatal(err)
	}
	var held []<-chan error
	for _, token := range []string{"a", "b"} {
		done := authenticateInBackground(ctx, a, token)
		awaitReview(t, entered, done, token)
		held = append(held, done)
	}
	refusedAtOnce(t, entered, authenticateInBackground(ctx, a, "c"), "a third review while two are in flight")
	if c, err := a.Authenticate(ctx, "cached"); err != nil || c.Identity.ServiceAccount != "cached" {
		t.Errorf("a cached token while reviews are full: %v, %v", c, err)
	}
	close(release)
	for _, done := range held {
		if err := <-done; err != nil {
			t.Errorf("a review in flight: %v", err)
		}
	}
	if _, err := a.Authenticate(ctx, "c"); err != nil {
		t.Errorf("once the reviews in flight ended: %v", err)
	}
}

// writtenAddr is a gRPC peer's address as its String writes it.
type writtenAddr string

func (a writtenAddr) Network() string { return "tcp" }
func (a writtenAddr) String() string  { return string(a) }

// TestReviewsInFlightAreBoundedPerPeer: one source address, sending tokens faster than the API
// server reviews them, holds at most MaxReviewsPerPeer of the reviews in flight, whatever its
// connections and however its address is written: the rest stay free for the real callers
// elsewhere, whose tokens are not cached yet. A call that is no IP peer's (none in its context,
// a Unix socket's) is bound by the total only.
func TestReviewsInFlightAreBoundedPerPeer(t *testing.T) {
	statuses := map[string]authenticationv1.TokenReviewStatus{}
	for _, sa := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		statuses[sa] = saStatus("system:serviceaccount:shop:"+sa, audience)
	}
	clientset, entered, release := holdingAPIServer(t, statuses, "")
	a, err := New(clientset, Options{Audiences: []string{audience}, MaxConcurrentReviews: 10, MaxReviewsPerPeer: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from := func(addr string) context.Context {
		return peer.NewContext(ctx, &peer.Peer{Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))})
	}
	unix := peer.NewContext(ctx, &peer.Peer{Addr: &net.UnixAddr{Name: "@xds", Net: "unix"}})
	var held []<-chan error
	hold := func(ctx context.Context, token string) {
		done := authenticateInBackground(ctx, a, token)
		awaitReview(t, entered, done, token)
		held = append(held, done)
	}
	hold(from("10.0.0.1:5000"), "a")
	hold(from("10.0.0.1:5001"), "b") // another connection of the same host
	refusedAtOnce(t, entered, authenticateInBackground(from("10.0.0.1:5002"), a, "c"),
		"a third review from 10.0.0.1 while two of its are in flight")
	refusedAtOnce(t, entered, authenticateInBackground(peer.NewContext(ctx, &peer.Peer{Addr: writtenAddr("[::ffff:10.0.0.1]:5003")}), a, "c"),
		"a third review from 10.0.0.1, written as an IPv4-mapped IPv6 address")
	hold(from("10.0.0.2:5000"), "d")
	hold(ctx, "e")
	hold(ctx, "f")
	hold(ctx, "g")
	hold(unix, "h")
	hold(unix, "i")
	hold(unix, "j")
	close(release)
	for _, done := range held {
		if err := <-done; err != nil {
			t.Errorf("a review in flight: %v", err)
		}
	}
	if _, err := a.Authenticate(from("10.0.0.1:5004"), "c"); err != nil {
		t.Errorf("once the reviews of 10.0.0.1 ended: %v", err)
	}
}

func TestAuthenticateAPIErrorIsNotUnauthenticated(t *testing.T) {
	r := &reviewer{err: apierrors.NewServiceUnavailable("etcd is away")}
	a, err := New(r.client(), Options{Audiences: []string{audience}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(context.Background(), "good")
	if err == nil || errors.Is(err, ErrUnauthenticated) || !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("got %v, want the API server's error, not ErrUnauthenticated", err)
	}
}

// jwt returns a JWT-shaped token with an exp claim (the signature is not checked here).
func jwt(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d,"sub":"x"}`, exp.Unix()))) + ".c2ln"
}

func TestCache(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	bookbuyer := podStatus("system:serviceaccount:default:bookbuyer", "uid-1", audience) // the cache keeps the pod too
	shortLived := jwt(t0.Add(20 * time.Second))
	r := &reviewer{statuses: map[string]authenticationv1.TokenReviewStatus{
		"good":     bookbuyer,
		"other":    saStatus("system:serviceaccount:default:bookstore", audience),
		shortLived: bookbuyer,
	}}
	clock := clocktesting.NewFakeClock(t0)
	a, err := New(r.client(), Options{Audiences: []string{audience}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	expect := func(step, token string, want Caller, wantErr bool, wantReviews int) {
		t.Helper()
		id, err := a.Authenticate(ctx, token)
		if (err != nil) != wantErr || id != want {
			t.Fatalf("%s: got %v, %v; want %v (error: %v)", step, id, err, want, wantErr)
		}
		if r.count() != wantReviews {
			t.Fatalf("%s: %d reviews so far, want %d", step, r.count(), wantReviews)
		}
	}
	buyer, store := Caller{Identity: Identity{"default", "bookbuyer"}, Pod: "uid-1"}, Caller{Identity: Identity{"default", "bookstore"}}

	expect("first", "good", buyer, false, 1)
	expect("again", "good", buyer, false, 1)
	expect("another token", "other", store, false, 2)
	clock.Step(59 * time.Second)
	expect("59s later", "good", buyer, false, 2)
	clock.Step(time.Second)
	expect("after the TTL", "good", buyer, false, 3)

	// Failures are never cached.
	expect("garbage", "garbage", Caller{}, true, 4)
	r.statuses["garbage"] = bookbuyer
	expect("garbage, now valid", "garbage", buyer, false, 5)

	// A token revoked after its review still passes until the entry expires, then fails.
	delete(r.statuses, "good")
	expect("revoked, cached", "good", buyer, false, 5)
	clock.Step(time.Minute)
	expect("revoked, expired from the cache", "good", Caller{}, true, 6)
	expect("revoked, again", "good", Caller{}, true, 7)

	// A token expiring before the TTL is cached until its exp only.
	clock.SetTime(t0)
	expect("short-lived", shortLived, buyer, false, 8)
	clock.Step(19 * time.Second)
	expect("short-lived, before exp", shortLived, buyer, false, 8)
	clock.Step(time.Second)
	expect("short-lived, at exp", shortLived, buyer, false, 9)
}

func TestCacheDisabled(t *testing.T) {
	r := &reviewer{statuses: map[string]authenticationv1.TokenReviewStatus{
		"good": saStatus("system:serviceaccount:default:bookbuyer", audience),
	}}
	a, err := New(r.client(), Options{Audiences: []string{audience}, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.Authenticate(context.Background(), "good"); err != nil {
			t.Fatal(err)
		}
	}
	if r.count() != 3 {
		t.Fatalf("%d reviews, want 3 with the cache disabled", r.count())
	}
}

func TestCacheSweepsExpiredEntries(t *testing.T) {
	r := &reviewer{statuses: map[string]authenticationv1.TokenReviewStatus{}}
	for i := range 10 {
		r.statuses[fmt.Sprint("t", i)] = saStatus("system:serviceaccount:default:x", audience)
	}
	clock := clocktesting.NewFakeClock(time.Unix(0, 0))
	a, err := New(r.client(), Options{Audiences: []string{audience}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if _, err := a.Authenticate(context.Background(), fmt.Sprint("t", i)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Step(2 * time.Minute)
	if _, err := a.Authenticate(context.Background(), "t9"); err != nil {
		t.Fatal(err)
	}
	if n := len(a.cache); n != 1 {
		t.Fatalf("%d cache entries, want 1: expired tokens are kept", n)
	}
}

func TestTokenExpiry(t *testing.T) {
	exp := time.Unix(1900000000, 0)
	for token, want := range map[string]bool{
		jwt(exp):  true,
		"opaque":  false,
		"a.b":     false,
		"a.!!!.c": false,
		"a." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + ".c":    false,
		"a." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":"soon"}`)) + ".c": false,
	} {
		got, ok := tokenExpiry(token)
		if ok != want || (ok && !got.Equal(exp)) {
			t.Errorf("tokenExpiry(%q) = %s, %v; want ok=%v", token, got, ok, want)
		}
	}
}
