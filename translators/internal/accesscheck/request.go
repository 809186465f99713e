package accesscheck

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// Request is one request or connection to a pod: the tuple the property is about.
type Request struct {
	// Principal is the SPIFFE ID the client can prove with a certificate from the mesh's CA;
	// empty when it has none (outside the mesh, or not using mutual TLS).
	Principal string
	Pod       Pod
	Port      int32
	// HTTP is set for an HTTP request; otherwise the request is an opaque TCP connection and the
	// fields below are empty.
	HTTP bool
	// Method and Path (without query string) as sent; paths are normalised (no "." or ".."
	// segments, no doubled or escaped slashes): the property leaves path normalisation out.
	Method string
	Path   string
	// Headers have lower-case names and one value each.
	Headers map[string]string
}

func (r Request) String() string {
	var b strings.Builder
	who := r.Principal
	if who == "" {
		who = "(no identity)"
	}
	fmt.Fprintf(&b, "%s -> pod of %s/%s (ServiceAccount %q, labels %v) port %d", who, r.Pod.Namespace, r.Pod.Workload,
		r.Pod.ServiceAccount, r.Pod.Labels, r.Port)
	if !r.HTTP {
		b.WriteString(" opaque TCP")
		return b.String()
	}
	fmt.Fprintf(&b, " HTTP %s %q", r.Method, r.Path)
	for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
		fmt.Fprintf(&b, " %s=%q", k, r.Headers[k])
	}
	return b.String()
}

// Requests draws n probes for c. Most start from what a TrafficTarget was written to allow (its
// sources, destination, ports, one of its matches' paths, methods and header values), so that a
// good share is allowed, and a third of those get one part replaced by a neighbour: another
// source, no identity, a name extending an allowed one, another pod, port, path, method or header
// value, a header left out. The rest are random over everything the case mentions.
func (c *Case) Requests(r *rand.Rand, n int) []Request {
	if len(c.Pods) == 0 {
		return nil
	}
	out := make([]Request, 0, n)
	for range n {
		var req Request
		if len(c.hints) > 0 && r.IntN(4) != 0 {
			req = c.aimed(r, pick(r, c.hints))
			if r.IntN(3) == 0 {
				c.perturb(r, &req)
			}
		} else {
			req = c.random(r)
		}
		out = append(out, req)
	}
	return out
}

// aimed is a request that h's TrafficTarget was written to allow.
func (c *Case) aimed(r *rand.Rand, h hint) Request {
	req := Request{Pod: c.podOf(r, h.namespace, h.serviceAccount), Port: pick(r, c.pool.ports)}
	if len(h.sources) > 0 {
		req.Principal = pick(r, h.sources)
	}
	if len(h.ports) > 0 {
		req.Port = pick(r, h.ports)
	}
	if len(h.matches) == 0 || r.IntN(5) == 0 {
		return req // opaque TCP
	}
	m := pick(r, h.matches)
	req.HTTP = true
	req.Path = pick(r, m.paths)
	req.Method = pick(r, c.pool.methods)
	if len(m.methods) > 0 {
		req.Method = pick(r, m.methods)
	}
	req.Headers = map[string]string{}
	for _, hh := range m.headers {
		req.Headers[hh.name] = pick(r, hh.values)
	}
	return req
}

// podOf returns a pod running as namespace/serviceAccount, or any pod when none does.
func (c *Case) podOf(r *rand.Rand, namespace, serviceAccount string) Pod {
	var pods []Pod
	for _, p := range c.Pods {
		if p.Namespace == namespace && p.ServiceAccount == serviceAccount {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		return pick(r, c.Pods)
	}
	return pick(r, pods)
}

// perturb replaces one part of req by a neighbour.
func (c *Case) perturb(r *rand.Rand, req *Request) {
	switch r.IntN(8) {
	case 0:
		req.Principal = pick(r, c.Identities)
	case 1:
		req.Principal = pick(r, []string{"", req.Principal + "-admin", strings.Replace(req.Principal, "spiffe://", "spiffe://other.", 1)})
	case 2:
		req.Pod = pick(r, c.Pods)
	case 3:
		req.Port = pick(r, c.pool.ports)
	case 4:
		if req.HTTP {
			req.Path = pick(r, c.pool.paths)
		}
	case 5:
		if req.HTTP {
			req.Method = pick(r, c.pool.methods)
		}
	case 6:
		if req.HTTP {
			h := pick(r, c.pool.headers)
			req.Headers[h.name] = pick(r, h.values)
		}
	default:
		// Sorted, so that a case replays the same requests.
		if names := slices.Sorted(maps.Keys(req.Headers)); len(names) > 0 {
			delete(req.Headers, pick(r, names))
		}
	}
}

// random is a request drawn from everything the case mentions.
func (c *Case) random(r *rand.Rand) Request {
	req := Request{Pod: pick(r, c.Pods), Port: pick(r, c.pool.ports)}
	if r.IntN(6) != 0 {
		req.Principal = pick(r, c.Identities)
	}
	if r.IntN(4) == 0 {
		return req
	}
	req.HTTP = true
	req.Path = pick(r, c.pool.paths)
	req.Method = pick(r, c.pool.methods)
	req.Headers = map[string]string{}
	for _, h := range c.pool.headers {
		if r.IntN(3) == 0 {
			req.Headers[h.name] = pick(r, h.values)
		}
	}
	return req
}
