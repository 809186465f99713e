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
// [Source] that owns the data (and may build resources on demand), and re-answers a scope's
// watches when told that the scope changed ([Cache.Notify]). Each resource carries its own
// version, so a client is only sent a response when something it asked for changed; a NACKed
// response is not re-sent until its content changes, so a proxy that rejects a resource keeps its
// last good configuration instead of looping.
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
	// Resolve returns the resource named name as a node of scope sees it, and a version that
	// changes whenever the resource's content does. ok is false when no such resource exists for
	// that scope.
	Resolve(scope, name string) (res types.Resource, version string, ok bool)
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
	// watches holds the open watches by scope.
	watches map[string]map[*watch]struct{}
	// responses counts responses, for their version_info (a label for logs: the resource
	// versions decide what is sent).
	responses uint64
}

type watch struct {
	scope    string
	request  *cache.Request
	sub      cache.Subscription
	response chan cache.Response
}

// New returns a cache for typeURL.
func New(typeURL string, scopeOf ScopeFunc, source Source) *Cache {
	return &Cache{typeURL: typeURL, scopeOf: scopeOf, source: source, watches: map[string]map[*watch]struct{}{}}
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
	w := &watch{scope: scope, request: req, sub: sub, response: out}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The first request of a subscription (no version yet) is always answered, even with nothing,
	// so the client learns that the names it asked for do not exist.
	if c.respond(w, req.GetVersionInfo() == "") {
		return func() {}, nil
	}
	if c.watches[scope] == nil {
		c.watches[scope] = map[*watch]struct{}{}
	}
	c.watches[scope][w] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.watches[w.scope], w)
		if len(c.watches[w.scope]) == 0 {
			delete(c.watches, w.scope)
		}
	}, nil
}

// Notify re-evaluates the open watches of the given scopes, or of every scope when none is given,
// and answers those whose resources changed.
func (c *Cache) Notify(scopes ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(scopes) == 0 {
		scopes = slices.Collect(maps.Keys(c.watches))
	}
	for _, scope := range scopes {
		for w := range c.watches[scope] {
			if c.respond(w, false) {
				delete(c.watches[scope], w)
			}
		}
		if len(c.watches[scope]) == 0 {
			delete(c.watches, scope)
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
func (c *Cache) respond(w *watch, force bool) bool {
	var names []string
	if w.sub.IsWildcard() {
		names = c.source.Wildcard(w.scope)
	} else {
		names = slices.Collect(maps.Keys(w.sub.SubscribedResources()))
	}
	slices.Sort(names)
	returned := w.sub.ReturnedResources()
	versions := make(map[string]string, len(names))
	resources := make([]types.Resource, 0, len(names))
	changed := force
	for _, name := range names {
		res, version, ok := c.source.Resolve(w.scope, name)
		if !ok {
			continue
		}
		versions[name] = version
		resources = append(resources, res)
		if last, sent := returned[name]; !sent || last != version {
			changed = true
		}
	}
	if !changed && cache.ResourceRequiresFullStateInSotw(c.typeURL) {
		// For LDS and CDS a resource missing from a response means it is gone: a removal is a
		// change too. (Other types cannot signal removals in state-of-the-world xDS.)
		for name := range returned {
			if _, ok := versions[name]; !ok {
				changed = true
				break
			}
		}
	}
	if !changed {
		return false
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
