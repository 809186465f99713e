// Package scoped is a go-control-plane cache for resources whose content depends on who asks.
//
// go-control-plane's LinearCache serves one resource per name to everyone, and its SnapshotCache
// serves a whole snapshot per node group. Neither fits what the xDS backend serves per workload
// identity: a proxyless gRPC server asks LDS for "grpc/server?xds.resource.listening_address=
// 0.0.0.0:8080", a name any server may use, whose answer (the RBAC of that server's identity)
// differs from one identity to the next, on the same stream as the client listeners everybody
// shares; an Envoy sidecar's inbound listener and its SDS secrets are the same story. A snapshot
// per identity would copy every shared resource for each identity and redo all of them on every
// change.
//
// [Cache] instead resolves each requested name for the node's scope when it answers, through a
// [Source] that owns the data and builds resources on demand: memory goes to what clients ask
// for, not to every resource that could be asked for (10,000 Services nobody dials cost their
// model, not their xDS resources). It re-answers the watches of a scope, or of names, when told
// that they changed ([Cache.Notify], [Cache.NotifyNames]). Each resource carries its own version,
// asked for before the resource is built, so a client is only sent a response when something it
// asked for changed, and only what changed is built; a NACKed response is not re-sent until its
// content changes, so a proxy that rejects a resource keeps its last good configuration instead
// of looping.
//
// It speaks state-of-the-world xDS only (what grpc-go uses, and Envoy on ADS by default).
package scoped

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Source owns the resources of one type URL. Its methods are called with the cache's lock held,
// so they must not call back into the Cache; they may be called concurrently for different
// caches.
type Source interface {
	// Version returns the version of the resource named name as a node of scope sees it: it
	// changes whenever the resource's content does, and must be cheap (no building). ok is false
	// when no such resource exists for that scope.
	Version(scope, name string) (version string, ok bool)
	// Resolve returns the resource at that version (or a newer one, if it changed meanwhile:
	// the next notification then re-sends it).
	Resolve(scope, name string) (res types.Resource, ok bool)
	// Wildcard lists the names a wildcard subscriber of scope gets.
	Wildcard(scope string) []string
}

// ScopeFunc tells which scope a node belongs to, or why it cannot be served.
type ScopeFunc func(node *corev3.Node) (string, error)

// Cache answers watches of one type URL from a Source. Its zero value is not usable: use New.
type Cache struct {
	typeURL string
	scopeOf ScopeFunc
	source  Source

	mu sync.Mutex
	// watches holds the open watches by scope; byName the named ones by the names they ask for,
	// and wildcard the wildcard ones.
	watches  map[string]map[*watch]struct{}
	byName   map[string]map[*watch]struct{}
	wildcard map[*watch]struct{}
	// responses counts responses, for their version_info (a label for logs: the resource
	// versions decide what is sent).
	responses uint64
	// held parks every watch unanswered until Release (see Hold).
	held bool
}

type watch struct {
	scope    string
	request  *cache.Request
	sub      cache.Subscription
	response chan cache.Response
	// wildcard is true when it asks for every name of its scope; names are the names it asks for
	// otherwise (none when a client unsubscribed from its last name).
	wildcard bool
	names    []string
	// first is true for the first request of a subscription (no version yet, and not the refusal
	// of a response): it is answered even with nothing.
	first bool
}

// New returns a cache for typeURL.
func New(typeURL string, scopeOf ScopeFunc, source Source) *Cache {
	return &Cache{typeURL: typeURL, scopeOf: scopeOf, source: source,
		watches: map[string]map[*watch]struct{}{}, byName: map[string]map[*watch]struct{}{}, wildcard: map[*watch]struct{}{}}
}

var _ cache.Cache = (*Cache)(nil)

// CreateWatch answers at once when something the request asks for differs from what the client
// was last sent, or parks the watch until Notify says its scope changed.
func (c *Cache) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("request for %s sent to the cache of %s", req.GetTypeUrl(), c.typeURL)
	}
	scope, err := c.scopeOf(req.GetNode())
	if err != nil {
		return nil, err
	}
	// A client that refused the first response it was sent has accepted no version either; answering
	// its refusal with the same content would have it refuse again, and so on without end.
	first := req.GetVersionInfo() == "" && req.GetErrorDetail() == nil
	w := &watch{scope: scope, request: req, sub: sub, response: out, wildcard: sub.IsWildcard(), first: first}
	if !w.wildcard {
		w.names = slices.Sorted(maps.Keys(sub.SubscribedResources()))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The first request of a subscription (no version yet, no refusal) is always answered, even
	// with nothing, so the client learns that the names it asked for do not exist.
	if !c.held && c.respond(w, w.first) {
		return func() {}, nil
	}
	c.track(w)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.untrack(w)
	}, nil
}

func (c *Cache) track(w *watch) {
	add(c.watches, w.scope, w)
	if w.wildcard {
		c.wildcard[w] = struct{}{}
	}
	for _, name := range w.names {
		add(c.byName, name, w)
	}
}

func (c *Cache) untrack(w *watch) {
	remove(c.watches, w.scope, w)
	delete(c.wildcard, w)
	for _, name := range w.names {
		remove(c.byName, name, w)
	}
}

func add(index map[string]map[*watch]struct{}, key string, w *watch) {
	if index[key] == nil {
		index[key] = map[*watch]struct{}{}
	}
	index[key][w] = struct{}{}
}

func remove(index map[string]map[*watch]struct{}, key string, w *watch) {
	delete(index[key], w)
	if len(index[key]) == 0 {
		delete(index, key)
	}
}

// Hold parks every watch, new or open, unanswered until Release. A cache whose source is still
// being filled holds: in state-of-the-world xDS a listener or cluster missing from a response is
// deleted by the client, so answering from half the data would break traffic to the other half,
// while a client that is not answered keeps the configuration it has.
func (c *Cache) Hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = true
}

// Release answers the watches parked since Hold, as they would have been answered had the cache
// not been held, and answers new ones at once again.
func (c *Cache) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held {
		return
	}
	c.held = false
	for _, ws := range c.watches {
		for w := range ws {
			if c.respond(w, w.first) {
				c.untrack(w)
			}
		}
	}
}

// Notify re-evaluates the open watches of the given scopes, or of every scope when none is given,
// and answers those whose resources changed.
func (c *Cache) Notify(scopes ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(scopes) == 0 {
		scopes = slices.Collect(maps.Keys(c.watches))
	}
	var ws []*watch
	for _, scope := range scopes {
		for w := range c.watches[scope] {
			ws = append(ws, w)
		}
	}
	c.reevaluate(ws)
}

// NotifyNames re-evaluates the open watches, of any scope, that ask for one of the names or for
// everything, and answers those whose resources changed: what a change to resources that look the
// same to every scope costs, whatever the number of other watches.
func (c *Cache) NotifyNames(names ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[*watch]bool{}
	var ws []*watch
	for _, name := range names {
		for w := range c.byName[name] {
			if !seen[w] {
				seen[w] = true
				ws = append(ws, w)
			}
		}
	}
	for w := range c.wildcard {
		if !seen[w] {
			ws = append(ws, w)
		}
	}
	c.reevaluate(ws)
}

func (c *Cache) reevaluate(ws []*watch) {
	if c.held {
		return
	}
	for _, w := range ws {
		if c.respond(w, false) {
			c.untrack(w)
		}
	}
}

// Watches returns the number of open watches, for metrics and tests.
func (c *Cache) Watches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ws := range c.watches {
		n += len(ws)
	}
	return n
}

// respond sends w its resources when they differ from what its client was last sent (or always
// when force), and reports whether it did. Each watch is answered at most once: the server opens
// a new one with the client's next request, so the send never blocks (the channel holds one).
//
// Listeners and clusters are full state in state-of-the-world xDS (a resource missing from a
// response is deleted), so their responses carry every resource asked for; for other types only
// what changed is built and sent, and the client keeps the rest.
func (c *Cache) respond(w *watch, force bool) bool {
	names := w.names
	if w.wildcard {
		names = slices.Sorted(slices.Values(c.source.Wildcard(w.scope)))
	}
	fullState := cache.ResourceRequiresFullStateInSotw(c.typeURL)
	returned := w.sub.ReturnedResources()
	versions := make(map[string]string, len(names))
	var changed []string
	for _, name := range names {
		version, ok := c.source.Version(w.scope, name)
		if !ok {
			continue
		}
		versions[name] = version
		if last, sent := returned[name]; !sent || last != version {
			changed = append(changed, name)
		}
	}
	removed := false
	if fullState {
		for name := range returned {
			if _, ok := versions[name]; !ok {
				removed = true
				break
			}
		}
	}
	if !force && len(changed) == 0 && !removed {
		return false
	}
	// Otherwise the client keeps what it was sent before; versions records it too, since a name
	// not changed has the version it was returned with.
	send := changed
	if fullState || force {
		send = slices.Sorted(maps.Keys(versions))
	}
	resources := make([]types.Resource, 0, len(send))
	for _, name := range send {
		if res, ok := c.source.Resolve(w.scope, name); ok {
			resources = append(resources, res)
		} else {
			delete(versions, name)
		}
	}
	c.responses++
	w.response <- &response{
		request:   w.request,
		version:   strconv.FormatUint(c.responses, 10),
		typeURL:   c.typeURL,
		resources: resources,
		versions:  versions,
	}
	return true
}

// CreateDeltaWatch is not supported: the clients the operator serves use state-of-the-world xDS.
func (c *Cache) CreateDeltaWatch(*cache.DeltaRequest, cache.Subscription, chan cache.DeltaResponse) (func(), error) {
	return nil, errors.New("incremental (delta) xDS is not served; use state-of-the-world ADS")
}

// Fetch is not supported: REST polling is not served.
func (c *Cache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("fetching xDS resources over REST is not served")
}

// response is one state-of-the-world answer.
type response struct {
	request   *cache.Request
	version   string
	typeURL   string
	resources []types.Resource
	// versions are the resource versions sent, by name: the server keeps them as the
	// subscription's returned resources, which the next respond compares with.
	versions map[string]string
}

func (r *response) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	out := &discoveryv3.DiscoveryResponse{VersionInfo: r.version, TypeUrl: r.typeURL}
	for _, res := range r.resources {
		a, err := anypb.New(res)
		if err != nil {
			return nil, fmt.Errorf("packing %s %q: %w", r.typeURL, cache.GetResourceName(res), err)
		}
		out.Resources = append(out.Resources, a)
	}
	return out, nil
}

func (r *response) GetRequest() *discoveryv3.DiscoveryRequest { return r.request }
func (r *response) GetVersion() (string, error)               { return r.version, nil }
func (r *response) GetResponseVersion() string                { return r.version }
func (r *response) GetReturnedResources() map[string]string   { return r.versions }
func (r *response) GetContext() context.Context               { return context.Background() }
