package scoped_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/smi-operator/smi-operator/xds/scoped"
)

// fakeSource serves listeners whose stat prefix tells which scope and revision they come from.
type fakeSource struct {
	mu sync.Mutex
	// revision of each scope's listeners; a listener exists in a scope when its name is listed.
	revision map[string]int
	names    map[string][]string
}

func (s *fakeSource) Version(scope, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.names[scope], name) {
		return itoa(s.revision[scope]), true
	}
	return "", false
}

func (s *fakeSource) Resolve(scope, name string) (types.Resource, bool) {
	version, ok := s.Version(scope, name)
	if !ok {
		return nil, false
	}
	return &listenerv3.Listener{Name: name, StatPrefix: scope + "@" + version}, true
}

func (s *fakeSource) Wildcard(scope string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[scope]
}

func (s *fakeSource) set(scope string, rev int, names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revision[scope] = rev
	s.names[scope] = names
}

func itoa(i int) string { return string(rune('0' + i)) }

// stream is one ADS client of a test server.
type stream struct {
	t       *testing.T
	ads     discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	typeURL string
	node    *corev3.Node
	replies chan *discoveryv3.DiscoveryResponse
}

func start(t *testing.T, source scoped.Source) (*scoped.Cache, func(scope string) *stream) {
	return startType(t, resourcev3.ListenerType, source)
}

func startType(t *testing.T, typeURL string, source scoped.Source) (*scoped.Cache, func(scope string) *stream) {
	t.Helper()
	c := scoped.New(typeURL, func(n *corev3.Node) (string, error) {
		return n.GetMetadata().GetFields()["scope"].GetStringValue(), nil
	}, source)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(ctx, c, nil))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return c, func(scope string) *stream {
		ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := structpb.NewStruct(map[string]any{"scope": scope})
		s := &stream{t: t, ads: ads, typeURL: typeURL, node: &corev3.Node{Id: scope, Metadata: meta}, replies: make(chan *discoveryv3.DiscoveryResponse, 10)}
		go func() {
			for {
				r, err := ads.Recv()
				if err != nil {
					close(s.replies)
					return
				}
				s.replies <- r
			}
		}()
		return s
	}
}

func (s *stream) send(version, nonce string, nack bool, names ...string) {
	s.t.Helper()
	req := &discoveryv3.DiscoveryRequest{Node: s.node, TypeUrl: s.typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}
	if nack {
		req.ErrorDetail = &status.Status{Message: "rejected"}
	}
	if err := s.ads.Send(req); err != nil {
		s.t.Fatal(err)
	}
}

// next returns the next response, as the stat prefix of each listener.
func (s *stream) next() (*discoveryv3.DiscoveryResponse, []string) {
	s.t.Helper()
	select {
	case r := <-s.replies:
		var got []string
		for _, a := range r.Resources {
			m, err := a.UnmarshalNew()
			if err != nil {
				s.t.Fatal(err)
			}
			switch m := m.(type) {
			case *listenerv3.Listener:
				got = append(got, m.Name+"="+m.StatPrefix)
			case *routev3.RouteConfiguration:
				got = append(got, m.Name+"="+m.VirtualHosts[0].Name)
			}
		}
		return r, got
	case <-time.After(5 * time.Second):
		s.t.Fatal("no response")
		return nil, nil
	}
}

func (s *stream) none() {
	s.t.Helper()
	select {
	case r := <-s.replies:
		s.t.Fatalf("unexpected response %v", r)
	case <-time.After(300 * time.Millisecond):
	}
}

func equal(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestScopesSeeTheirOwnResourceUnderOneName(t *testing.T) {
	src := &fakeSource{revision: map[string]int{}, names: map[string][]string{}}
	src.set("a", 1, "server", "shared")
	src.set("b", 1, "server")
	c, open := start(t, src)

	a, b := open("a"), open("b")
	a.send("", "", false, "server", "missing")
	r, got := a.next()
	equal(t, got, "server=a@1")
	b.send("", "", false, "server")
	rb, gotB := b.next()
	equal(t, gotB, "server=b@1")
	b.send(rb.VersionInfo, rb.Nonce, false, "server")

	// An ACK of what was sent parks the watch: nothing changes, nothing is sent.
	a.send(r.VersionInfo, r.Nonce, false, "server", "missing")
	a.none()

	// A change in scope b reaches b only.
	src.set("b", 2, "server")
	c.Notify("b")
	a.none()
	_, gotB = b.next()
	equal(t, gotB, "server=b@2")
}

// TestNACKedContentIsNotResent: a client that refuses a response keeps the version it accepted
// before, none when it refuses the first response of a subscription (its NACK then carries no
// version, as grpc-go's and Envoy's do); it is not sent the refused content again, or the two
// would trade it and its refusal as fast as they can, until the content changes.
func TestNACKedContentIsNotResent(t *testing.T) {
	for _, refusesFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuses the first response: %v", refusesFirst), func(t *testing.T) {
			src := &fakeSource{revision: map[string]int{}, names: map[string][]string{}}
			src.set("a", 1, "server")
			c, open := start(t, src)
			a := open("a")
			a.send("", "", false, "server")
			bad, got := a.next()
			equal(t, got, "server=a@1")
			accepted := ""
			if !refusesFirst {
				// It accepts revision 1, and refuses revision 2.
				accepted = bad.VersionInfo
				a.send(accepted, bad.Nonce, false, "server")
				src.set("a", 2, "server")
				c.Notify()
				bad, got = a.next()
				equal(t, got, "server=a@2")
			}
			a.send(accepted, bad.Nonce, true, "server")
			a.none()
			c.Notify("a")
			a.none()
			src.set("a", 3, "server")
			c.Notify("a")
			_, got = a.next()
			equal(t, got, "server=a@3")
		})
	}
}

func TestWildcardAndRemoval(t *testing.T) {
	src := &fakeSource{revision: map[string]int{}, names: map[string][]string{}}
	src.set("a", 1, "inbound", "outbound")
	c, open := start(t, src)
	a := open("a")
	a.send("", "", false)
	r, got := a.next()
	equal(t, got, "inbound=a@1", "outbound=a@1")
	a.send(r.VersionInfo, r.Nonce, false)

	// Listeners are full-state: dropping one is a change the client must be told about.
	src.set("a", 1, "outbound")
	c.Notify("a")
	_, got = a.next()
	equal(t, got, "outbound=a@1")
	if n := c.Watches(); n != 0 {
		t.Errorf("%d watches open after answering, want 0", n)
	}
}

// routeSource serves route configurations, the same to every scope, each with its own version.
type routeSource struct {
	mu       sync.Mutex
	versions map[string]int
}

func (s *routeSource) Version(_, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.versions[name]
	return itoa(v), ok
}

func (s *routeSource) Resolve(scope, name string) (types.Resource, bool) {
	v, ok := s.Version(scope, name)
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: "v" + v}}}, ok
}

func (s *routeSource) Wildcard(string) []string { return nil }

func (s *routeSource) set(name string, v int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions[name] = v
}

// TestNotifyNamesSendsOnlyWhatChanged: for types that are not full state (routes), a change to
// one name wakes the watches asking for it, in any scope, and sends that resource only; watches
// not asking for it stay parked.
func TestNotifyNamesSendsOnlyWhatChanged(t *testing.T) {
	src := &routeSource{versions: map[string]int{"a": 1, "b": 1, "c": 1}}
	c, open := startType(t, resourcev3.RouteType, src)
	x, y := open("x"), open("y")
	x.send("", "", false, "a", "b")
	rx, got := x.next()
	equal(t, got, "a=v1", "b=v1")
	x.send(rx.VersionInfo, rx.Nonce, false, "a", "b")
	y.send("", "", false, "c")
	ry, got := y.next()
	equal(t, got, "c=v1")
	y.send(ry.VersionInfo, ry.Nonce, false, "c")

	src.set("b", 2)
	c.NotifyNames("b")
	_, got = x.next()
	equal(t, got, "b=v2")
	y.none()
}

// TestUnsubscribingFromEveryNameIsNotWildcard: a client that drops its last name asks for
// nothing, not for every resource of its scope.
func TestUnsubscribingFromEveryNameIsNotWildcard(t *testing.T) {
	src := &fakeSource{revision: map[string]int{}, names: map[string][]string{}}
	src.set("a", 1, "inbound", "outbound")
	c, open := start(t, src)
	a := open("a")
	a.send("", "", false, "inbound")
	r, got := a.next()
	equal(t, got, "inbound=a@1")
	a.send(r.VersionInfo, r.Nonce, false) // no names left
	src.set("a", 2, "inbound", "outbound")
	c.Notify("a")
	c.NotifyNames("outbound")
	a.none()
}

// TestHeldCacheAnswersNothingUntilReleased: while held, neither a first request nor a change is
// answered, however the source changes meanwhile; on Release every parked watch gets what it would
// have got, from the source as it is then.
func TestHeldCacheAnswersNothingUntilReleased(t *testing.T) {
	src := &fakeSource{revision: map[string]int{}, names: map[string][]string{}}
	src.set("a", 1, "server")
	c, open := start(t, src)
	c.Hold()

	a, b := open("a"), open("b")
	a.send("", "", false, "server")
	b.send("", "", false, "missing")
	src.set("a", 2, "server")
	c.Notify()
	c.NotifyNames("server")
	a.none()
	b.none()

	c.Release()
	_, got := a.next()
	equal(t, got, "server=a@2")
	// A first request is answered even when nothing it asks for exists.
	if r, _ := b.next(); len(r.Resources) != 0 {
		t.Errorf("b got %d resources for a name that does not exist", len(r.Resources))
	}
}
