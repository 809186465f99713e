package xds_test

import (
	"fmt"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/smi-operator/smi-operator/translators/internal/accesscheck"
	"github.com/smi-operator/smi-operator/translators/mesh"
	"github.com/smi-operator/smi-operator/translators/xds"
)

// listenerBackend is the xDS backend as the property sees it, for one kind of client: the
// Listener a workload gets for its identity's rules, judged as that client would. Listeners are
// built once per identity (and port, for gRPC servers) and case.
//
// In permissive mode the xDS backend enforces nothing on purpose (see the package comment:
// "rules" are left out, the policies go to "shadow_rules"), so there the property checks what it
// reports it would deny: the shadow rules, evaluated as if enforced, must not be wider than the
// model either.
func listenerBackend(kind accesscheck.ListenerKind) accesscheck.Backend {
	b := accesscheck.Backend{Translate: func(t testing.TB, model mesh.Model, settings mesh.Settings) func(accesscheck.Request) bool {
		var opts []accesscheck.ListenerOption
		if !settings.Enforcing() {
			opts = append(opts, accesscheck.ShadowAsEnforced())
		}
		listeners := map[string]*accesscheck.Listener{}
		return func(req accesscheck.Request) bool {
			key := req.Pod.Namespace + "/" + req.Pod.ServiceAccount
			if kind == accesscheck.GRPCServer {
				key += fmt.Sprintf(":%d", req.Port) // a server Listener belongs to one port
			}
			l, ok := listeners[key]
			if !ok {
				rules := xds.RulesFor(model.AccessRules, req.Pod.Namespace, req.Pod.ServiceAccount)
				var out *listenerv3.Listener
				var err error
				if kind == accesscheck.GRPCServer {
					out, err = xds.ServerListener(xds.ServerListenerName("0.0.0.0", uint32(req.Port)), rules, settings)
				} else {
					out, err = xds.InboundListener(rules, settings)
				}
				if err != nil {
					t.Fatalf("listener for %s: %v", key, err)
				}
				l = accesscheck.NewListener(t, out, kind, opts...)
				listeners[key] = l
			}
			return l.Allows(t, req)
		}
	}}
	if kind == accesscheck.GRPCServer {
		b.Receives = func(req accesscheck.Request) accesscheck.Request {
			if !req.HTTP {
				req.HTTP, req.Path, req.Headers = true, "/", map[string]string{}
			}
			req.Method = "POST"
			return req
		}
	}
	return b
}

// TestAccessPropertyEnvoy: for random valid SMI input, an Envoy sidecar's inbound listener never
// lets through a request or connection that the model's access rules deny (issue 12).
func TestAccessPropertyEnvoy(t *testing.T) {
	accesscheck.Property(t, listenerBackend(accesscheck.EnvoyInbound), 2000, 150)
}

// TestAccessPropertyGRPCServer: the same for proxyless gRPC servers, for the requests they can
// receive (HTTP/2 POSTs).
func TestAccessPropertyGRPCServer(t *testing.T) {
	accesscheck.Property(t, listenerBackend(accesscheck.GRPCServer), 1000, 150)
}

// TestAccessPropertyCatchesWidenings: the property, on both kinds of listeners, sees access
// widened in any one dimension.
func TestAccessPropertyCatchesWidenings(t *testing.T) {
	t.Run("Envoy", func(t *testing.T) { accesscheck.RequireCatchesWidenings(t, listenerBackend(accesscheck.EnvoyInbound)) })
	t.Run("GRPCServer", func(t *testing.T) { accesscheck.RequireCatchesWidenings(t, listenerBackend(accesscheck.GRPCServer)) })
}

func FuzzAccessPropertyEnvoy(f *testing.F) {
	accesscheck.FuzzProperty(f, listenerBackend(accesscheck.EnvoyInbound))
}

func FuzzAccessPropertyGRPCServer(f *testing.F) {
	accesscheck.FuzzProperty(f, listenerBackend(accesscheck.GRPCServer))
}
