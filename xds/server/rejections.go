package server

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// A proxy that rejects a response (a NACK) keeps its last good configuration: traffic stays where
// it was while the SMI object says it is programmed. The server remembers, per stream, which
// resources the stream's proxy refused and why, until the proxy accepts a later version of them,
// stops asking for them, or goes away, and maps them back to the SMI objects that program them,
// so that their status says so (Rejections). Only streams that are accountable for what they say
// count (streams.accountable): status is what users act on, and a client that proved nothing must
// not be able to write it. A proven identity is still any workload of the cluster, so an object's
// status quotes only the errors of proxies of its own namespace, and counts the others (Rejection).
//
// In state-of-the-world xDS a NACK names the nonce of the response it refuses, not a resource:
// the server keeps the names of the resources of every response not yet answered. grpc-go and
// C-core validate each resource apart, apply the valid ones and name the invalid ones in the
// error; so a NACK whose error names resources of the response is held against those only, and
// one that names none (Envoy's can) against the whole response.

// resourceKey names one resource a stream was sent.
type resourceKey struct {
	typeURL, name string
}

// sentResponse is what a response not yet answered carried.
type sentResponse struct {
	nonce int64
	names []string
}

// maxUnanswered bounds the responses remembered per stream and type: a proxy answers each one in
// turn, and one that does not must not make the server hoard names.
const maxUnanswered = 8

// rejectionChange is a stream's rejections of some resources that appeared or cleared (keys), or
// whose error alone changed (reworded).
type rejectionChange struct {
	identity Identity // the stream's
	keys     []resourceKey
	reworded []resourceKey
}

// sentResponseOf is what remembering a response keeps: its nonce and the names of its resources,
// read before taking streams.mu (a response to an Envoy sidecar may carry thousands).
func sentResponseOf(resp *discoveryv3.DiscoveryResponse) (sentResponse, bool) {
	nonce, err := strconv.ParseInt(resp.GetNonce(), 10, 64)
	if err != nil {
		return sentResponse{}, false
	}
	names := make([]string, 0, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		if name, ok := resourceName(r.GetValue()); ok {
			names = append(names, name)
		}
	}
	return sentResponse{nonce: nonce, names: names}, true
}

// recordResponse remembers a response of typeURL about to be sent on the stream. The caller holds
// streams.mu.
func (st *streamState) recordResponse(typeURL string, r sentResponse) {
	if st.sent == nil {
		st.sent = map[string][]sentResponse{}
	}
	sent := append(st.sent[typeURL], r)
	if len(sent) > maxUnanswered {
		sent = slices.Delete(sent, 0, len(sent)-maxUnanswered)
	}
	st.sent[typeURL] = sent
}

// answered takes the response a reply (ACK or NACK) names out of those remembered, with every
// older one of its type: a proxy answers in order, so those were superseded.
func (st *streamState) answered(typeURL, nonce string) (sentResponse, bool) {
	n, err := strconv.ParseInt(nonce, 10, 64)
	if err != nil || len(st.sent[typeURL]) == 0 {
		return sentResponse{}, false // not a nonce of ours, or nothing of the type was sent
	}
	var found sentResponse
	ok := false
	st.sent[typeURL] = slices.DeleteFunc(st.sent[typeURL], func(r sentResponse) bool {
		if r.nonce == n {
			found, ok = r, true
		}
		return r.nonce <= n
	})
	return found, ok
}

// reply updates the stream's rejections with a request: an ACK clears the resources of the
// response it accepts, a NACK marks those its error names (all of the response's when it names
// none) and clears the others, and a request that no longer names a resource clears it. It
// returns the resources whose rejection appeared or cleared, and those whose error alone changed.
// The caller holds streams.mu.
func (st *streamState) reply(req *discoveryv3.DiscoveryRequest) (changed, reworded []resourceKey) {
	set := func(key resourceKey, detail string) {
		old, had := st.rejected[key]
		if had && old == detail {
			return
		}
		if st.rejected == nil {
			st.rejected = map[resourceKey]string{}
		}
		st.rejected[key] = detail
		if had {
			reworded = append(reworded, key)
		} else {
			changed = append(changed, key)
		}
	}
	clear := func(key resourceKey) {
		if _, had := st.rejected[key]; had {
			delete(st.rejected, key)
			changed = append(changed, key)
		}
	}
	typeURL := req.GetTypeUrl()
	if req.GetResponseNonce() != "" {
		if resp, ok := st.answered(typeURL, req.GetResponseNonce()); ok {
			detail := boundedDetail(req.GetErrorDetail().GetMessage())
			var refused map[string]bool // nil: all of the response's
			if req.GetErrorDetail() != nil {
				if named := namedIn(detail, resp.names); len(named) > 0 {
					refused = setOf(named)
				}
			}
			for _, name := range resp.names {
				if req.GetErrorDetail() != nil && (refused == nil || refused[name]) {
					set(resourceKey{typeURL, name}, detail)
				} else {
					clear(resourceKey{typeURL, name})
				}
			}
		}
	}
	// A subscription by name that drops a resource: the proxy no longer holds it. Wildcard
	// subscriptions (no names) hold whatever the responses carry.
	if names := req.GetResourceNames(); len(names) > 0 && len(st.rejected) > 0 {
		held := setOf(names)
		for key := range st.rejected {
			if key.typeURL == typeURL && !held[key.name] {
				clear(key)
			}
		}
	}
	return changed, reworded
}

func setOf(names []string) map[string]bool {
	set := make(map[string]bool, len(names))
	for _, name := range names {
		set[name] = true
	}
	return set
}

// maxRejectionDetail bounds the part of a proxy's error kept: the text is the proxy's own, not
// proven by anything, and goes into SMI objects' conditions and Events, which the API server
// limits (a condition message to 32 KiB); a proxy must not be able to make those writes fail.
const maxRejectionDetail = 1024

// boundedDetail is a proxy's error as the server keeps it: valid UTF-8, at most
// maxRejectionDetail bytes, cut at a rune boundary and marked when cut.
func boundedDetail(message string) string {
	message = strings.ToValidUTF8(message, "\uFFFD")
	if len(message) <= maxRejectionDetail {
		return message
	}
	cut := maxRejectionDetail
	for cut > 0 && !utf8.RuneStart(message[cut]) {
		cut--
	}
	return message[:cut] + "…"
}

// namedIn returns the names that occur in an error message, each where it is not part of a
// longer name that occurs there: resource names nest ("web…:80" in "web…:8080", "b.shop…" in
// "web.shop…"), and a refusal of one must not be held against the others.
func namedIn(message string, names []string) []string {
	type span struct{ from, to int }
	occurrences := map[string][]span{}
	for _, name := range names {
		for at := 0; name != ""; {
			i := strings.Index(message[at:], name)
			if i < 0 {
				break
			}
			occurrences[name] = append(occurrences[name], span{at + i, at + i + len(name)})
			at += i + 1
		}
	}
	within := func(name string, sp span) bool {
		for other, spans := range occurrences {
			if len(other) <= len(name) {
				continue
			}
			for _, o := range spans {
				if o.from <= sp.from && sp.to <= o.to {
					return true
				}
			}
		}
		return false
	}
	var out []string
	for _, name := range names {
		if slices.ContainsFunc(occurrences[name], func(sp span) bool { return !within(name, sp) }) {
			out = append(out, name)
		}
	}
	return out
}

// resourceName reads the name of a serialized xDS resource: field 1 of every type the server
// serves (Listener, RouteConfiguration, Cluster and Secret name, ClusterLoadAssignment
// cluster_name), read without unmarshalling the whole resource, since a response to an Envoy
// sidecar may carry thousands.
func resourceName(b []byte) (string, bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", false
			}
			return string(v), true
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
	}
	return "", false
}

// Rejection is what the proxies that refuse one SMI object's configuration say of it.
type Rejection struct {
	// Proxies is how many proxies (ADS streams) refuse a resource the object programs and hold
	// an older version of it.
	Proxies int
	// Detail is the error of one of those of the object's own namespace (the oldest stream's, so
	// that it stays put while others come and go), and By that proxy's identity. Detail is ""
	// when every one is of another namespace: a proxy's text is its own, proven by nothing, and a
	// workload of one namespace must not write what another namespace's owners read.
	Detail string
	By     Identity
	// Namespaces are the other namespaces whose proxies refuse it, sorted ("" for proxies that
	// claim no identity, on a plain-text server). Their errors are in the operator's log.
	Namespaces []string
}

// Rejections says which proxies refuse, and still hold an older version of, a resource the SMI
// object ref programs. It is asked on every xDS reconcile of an SMI object: its cost follows what
// ref programs and the streams that refuse something, not the mesh.
func (s *Server) Rejections(ref mesh.ObjectRef) Rejection {
	var r Rejection
	s.mu.RLock()
	programs := s.programmedResources(ref)
	s.mu.RUnlock()
	if len(programs.resources) == 0 && len(programs.identities) == 0 {
		return r
	}
	oldest := int64(-1)
	elsewhere := map[string]bool{}
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	for id, st := range s.streams.rejecting {
		d, refused := programs.refusedBy(st)
		if !refused {
			continue
		}
		r.Proxies++
		if st.info.identity.Namespace != ref.Namespace { // no identity: namespace "", no object's
			elsewhere[st.info.identity.Namespace] = true
			continue
		}
		if oldest < 0 || id < oldest {
			oldest, r.Detail, r.By = id, d, st.info.identity
		}
	}
	r.Namespaces = slices.Sorted(maps.Keys(elsewhere))
	return r
}

// maxNamespacesNamed bounds the other namespaces a rejection message names.
const maxNamespacesNamed = 5

// RejectionDiagnostics reports, as a Programmed=False diagnostic on ref, proxies that refused
// what ref programs; none when every proxy took it.
func (s *Server) RejectionDiagnostics(ref mesh.ObjectRef) []mesh.Diagnostic {
	r := s.Rejections(ref)
	if r.Proxies == 0 {
		return nil
	}
	what := "proxies reject"
	if r.Proxies == 1 {
		what = "proxy rejects"
	}
	message := fmt.Sprintf("%d xDS %s this object's configuration and keep their last good one", r.Proxies, what)
	if r.Detail != "" {
		message += fmt.Sprintf("; the one of %s says: %s", describe(r.By), r.Detail)
	}
	if len(r.Namespaces) > 0 {
		named := make([]string, 0, maxNamespacesNamed)
		for _, ns := range r.Namespaces[:min(len(r.Namespaces), maxNamespacesNamed)] {
			if ns == "" {
				named = append(named, "with no identity")
			} else {
				named = append(named, fmt.Sprintf("of namespace %q", ns))
			}
		}
		if more := len(r.Namespaces) - len(named); more > 0 {
			named = append(named, fmt.Sprintf("of %d more namespaces", more))
		}
		message += fmt.Sprintf("; refusing proxies %s are counted, not quoted (their errors are in the operator's log)",
			strings.Join(named, ", "))
	}
	return []mesh.Diagnostic{{Object: ref, Condition: smi.ConditionProgrammed, Reason: mesh.ReasonRejectedByProxies,
		Severity: mesh.SeverityWarning, Message: message}}
}

// programmed is what one SMI object programs: the resources whose refusal by a proxy leaves
// the object's configuration out of that proxy.
type programmed struct {
	// resources are those served alike to every proxy that asks for them.
	resources []resourceKey
	// identities are the scopes whose own listeners (Envoy's inbound one, gRPC servers') carry
	// the object's rules.
	identities []string
}

// refusedBy says whether the stream's proxy refuses one of these resources, and with which error
// (the least by text of those it gives for them, so that the one reported stays put). The caller
// holds streams.mu.
func (p programmed) refusedBy(st *streamState) (detail string, refused bool) {
	consider := func(d string) {
		if !refused || d < detail {
			detail = d
		}
		refused = true
	}
	for _, key := range p.resources {
		if d, ok := st.rejected[key]; ok {
			consider(d)
		}
	}
	if len(p.identities) > 0 && slices.Contains(p.identities, scopeKey(st.info.identity)) {
		for key, d := range st.rejected {
			if isIdentityListener(key) {
				consider(d)
			}
		}
	}
	return detail, refused
}

// isIdentityListener says whether the resource is one of the listeners built for the identity of
// the stream that asks: an Envoy sidecar's inbound listener, a gRPC server's listener.
func isIdentityListener(key resourceKey) bool {
	return key.typeURL == resourcev3.ListenerType &&
		(key.name == xds.InboundListenerName || strings.HasPrefix(key.name, xds.ServerListenerNamePrefix))
}

// splitResources are the resources a split programs when it is the one served for its apex: its
// route configurations (names), the gRPC clients' listeners of the apex, the clusters and load
// assignments of its backends and of its apex on the apex's ports (its route configurations name
// them all for proxyless clients, xds.SplitRoutes, which fetch them with the routes), and the
// Envoy outbound listener when it carries the split's weights (xds.WeighsOnOutboundListener).
func splitResources(split *mesh.Split, names []string) []resourceKey {
	var out []resourceKey
	for _, name := range names {
		out = append(out, resourceKey{resourcev3.RouteType, name})
	}
	if xds.WeighsOnOutboundListener(*split) {
		out = append(out, resourceKey{resourcev3.ListenerType, xds.OutboundListenerName})
	}
	services := []mesh.Service{split.Apex}
	for _, b := range split.Backends {
		services = append(services, b.Service)
	}
	for _, port := range split.Apex.Ports {
		if port.Protocol != corev1.ProtocolTCP {
			continue
		}
		out = append(out, resourceKey{resourcev3.ListenerType, xds.ListenerName(split.Apex, port.Port)})
		for _, svc := range services {
			name := xds.ClusterName(svc, port.Port)
			out = append(out, resourceKey{resourcev3.ClusterType, name}, resourceKey{resourcev3.EndpointType, name})
		}
	}
	return out
}

// indexSplitResources records what the split of source programs (none when split is nil), so that
// a refused resource leads to its splits in proportion to them, not to the mesh. The caller holds
// s.mu for writing.
func (s *Server) indexSplitResources(source mesh.ObjectRef, split *mesh.Split) {
	for _, key := range s.splitResources[source] {
		delete(s.splitsByResource[key], source)
		if len(s.splitsByResource[key]) == 0 {
			delete(s.splitsByResource, key)
		}
	}
	delete(s.splitResources, source)
	if split == nil {
		return
	}
	keys := splitResources(split, s.splitNames[source])
	s.splitResources[source] = keys
	for _, key := range keys {
		if s.splitsByResource[key] == nil {
			s.splitsByResource[key] = map[mesh.ObjectRef]bool{}
		}
		s.splitsByResource[key][source] = true
	}
}

// served says whether the split of source is the one served for its apex (splitOf).
func (s *Server) served(source mesh.ObjectRef) bool {
	apex, ok := s.splitApex[source]
	return ok && s.servedSplit(apex) == source
}

// programmedResources is what the object ref programs: for the split served for its apex (its
// rivals program nothing while the controller hands the apex over), splitResources; for a
// TrafficTarget, its destinations' own listeners; for a TrafficPolicy, policyResources. The
// caller holds s.mu.
func (s *Server) programmedResources(ref mesh.ObjectRef) programmed {
	p := programmed{identities: s.accessScopes[ref], resources: s.policyResources(ref)}
	if s.served(ref) {
		p.resources = append(p.resources, s.splitResources[ref]...)
	}
	return p
}

// policyResources are the resources the policy of source puts its settings on, on the ports of its
// Service where it is the one served (servedPolicy): each port's route configuration and cluster,
// the gRPC clients' listener when it has a fault (its filter is there), and the Envoy outbound
// listener where it puts something on the Service's chains there (xds.PolicyOnOutboundListener).
// None when source has no policy. The caller holds s.mu.
func (s *Server) policyResources(source mesh.ObjectRef) []resourceKey {
	key, ok := s.policyService[source]
	if !ok {
		return nil
	}
	entry, ok := s.services[key]
	if !ok {
		return nil
	}
	p, svc := s.policies[key][source], entry.service
	var out []resourceKey
	outbound := false
	for _, port := range xds.PolicyPorts(p, svc) {
		if served, _ := s.servedPolicy(key, port.Port); served != source {
			continue
		}
		name := xds.ListenerName(svc, port.Port)
		out = append(out, resourceKey{resourcev3.RouteType, name}, resourceKey{resourcev3.ClusterType, xds.ClusterName(svc, port.Port)})
		if p.Fault != nil {
			out = append(out, resourceKey{resourcev3.ListenerType, name})
		}
		outbound = outbound || xds.PolicyOnOutboundListener(p, port)
	}
	if outbound && xds.HasOutboundChains(svc) {
		out = append(out, resourceKey{resourcev3.ListenerType, xds.OutboundListenerName})
	}
	return out
}

// programmedBy adds to refs the SMI objects of namespace ("": of any) that program one of the
// resources keys a stream of the identity scope was sent. The caller holds s.mu.
func (s *Server) programmedBy(scope string, keys []resourceKey, namespace string, refs map[mesh.ObjectRef]bool) {
	add := func(ref mesh.ObjectRef) {
		if namespace == "" || ref.Namespace == namespace {
			refs[ref] = true
		}
	}
	sent := make(map[resourceKey]bool, len(keys))
	targetsAdded := false // the rules of the identity's listeners, once one of them is refused
	for _, key := range keys {
		sent[key] = true
		if isIdentityListener(key) && !targetsAdded {
			for ref := range s.access[scope] {
				add(ref)
			}
			targetsAdded = true
		}
		for source := range s.splitsByResource[key] {
			if s.served(source) {
				add(source)
			}
		}
	}
	// Policies are looked through, not indexed like splits: there are few of them, and a
	// proxy's rejections change seldom.
	for svc, sources := range s.policies {
		if namespace != "" && svc.Namespace != namespace {
			continue // a policy is of its Service's namespace
		}
		for source := range sources {
			if slices.ContainsFunc(s.policyResources(source), func(key resourceKey) bool { return sent[key] }) {
				add(source)
			}
		}
	}
}

// OnRejections has fn told which SMI objects a proxy began or stopped refusing the resources of
// (their Rejections changed), so that their status is written again; it replaces any earlier fn.
// An object is named at most once per Options.RejectionReportInterval: at once the first time,
// then once at the end of each interval in which it changed again. fn is called on the ADS
// streams' goroutines and on timers', and must not block.
func (s *Server) OnRejections(fn func([]mesh.ObjectRef)) {
	s.onRejections.Store(&fn)
}

// rejectionsChanged tells the OnRejections function which SMI objects' rejections appeared or
// cleared, or quote an error that changed: only objects of the stream's namespace quote its errors
// (Rejections), so a rewording elsewhere changes nothing of theirs, and must not have them
// reconciled each time a proxy rewords its refusals.
func (s *Server) rejectionsChanged(change rejectionChange) {
	fn := s.onRejections.Load()
	if fn == nil || len(change.keys) == 0 && len(change.reworded) == 0 {
		return
	}
	scope := scopeKey(change.identity)
	refs := map[mesh.ObjectRef]bool{}
	s.mu.RLock()
	s.programmedBy(scope, change.keys, "", refs)
	// A stream without an identity has the namespace "", no object's: its words are nobody's.
	if ns := change.identity.Namespace; ns != "" && len(change.reworded) > 0 {
		s.programmedBy(scope, change.reworded, ns, refs)
	}
	s.mu.RUnlock()
	if len(refs) > 0 {
		s.rejectionReports.changed(slices.SortedFunc(maps.Keys(refs), compareRefs))
	}
}
