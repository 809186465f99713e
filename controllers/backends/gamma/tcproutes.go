package gamma

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/controllers/backends"
	"github.com/smi-operator/smi-operator/controllers/smioperator"
	gammatranslator "github.com/smi-operator/smi-operator/translators/gamma"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TCPRoute v1 is standard only from Gateway API v1.6; before, it is experimental and v1alpha2,
// which this operator does not write. HTTPRoute (v1.0) and GRPCRoute (v1.1) are standard in every
// release a mesh reads routes of, so a cluster may well serve them and not TCPRoute: the backend
// then runs without TCPRoutes rather than not at all. Only the splits of TCP ports (and of ports
// whose protocol is left to the mesh, which get an HTTPRoute too) miss anything, and each says so
// (TCPRouteNotServed).
//
// TCPRoute appearing later is noticed by the instance itself (awaitTCPRoutes), at the pace the
// Switch retries a backend that cannot run: the instance then no longer fits (instance.Fits) and
// the Switch brings up one that watches and writes TCPRoutes, as for any change of settings. That
// keeps the Switch as it is and the watches as they are (added once, when their kind is served);
// the cost is one discovery request per smioperator.UnavailableRetry while TCPRoute is missing.

// routeLists are the list kinds of the routes the backend cannot run without.
func routeLists() []client.ObjectList {
	return []client.ObjectList{&gatewayv1.HTTPRouteList{}, &gatewayv1.GRPCRouteList{}}
}

// tcpRouteLists is the list kind of TCPRoutes, which the backend writes where they are served.
func tcpRouteLists() []client.ObjectList { return []client.ObjectList{&gatewayv1.TCPRouteList{}} }

// installTCPRoute says what makes TCPRoute v1 served.
const installTCPRoute = "install the Gateway API CRDs, standard channel v1.6 or later " +
	"(before v1.6 TCPRoute is experimental, as v1alpha2, which this operator does not write)"

// tcpRoutesServed says whether the cluster serves TCPRoute v1.
func tcpRoutesServed(mgr manager.Manager) bool {
	return backends.Served(mgr, Name, installTCPRoute, tcpRouteLists()) == nil
}

// awaitTCPRoutes checks, every smioperator.UnavailableRetry until stopped, whether the cluster
// serves TCPRoute now; once it does, it sets served and wakes the Switch, to which the instance no
// longer fits.
func awaitTCPRoutes(env backends.Env) (served *atomic.Bool, stop context.CancelFunc) {
	served = &atomic.Bool{}
	ctx, stop := context.WithCancel(env.RunContext)
	go func() {
		tick := time.NewTicker(smioperator.UnavailableRetry)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if tcpRoutesServed(env.Manager) {
					env.Log.Info("the cluster serves TCPRoute now: the gamma backend starts writing TCPRoutes")
					served.Store(true)
					env.Wake()
					return
				}
			}
		}
	}()
	return served, stop
}

// tcpRoutesNotServed reports on self the TCPRoutes of out that the cluster cannot take: an error
// when out holds no other route (nothing of the split is written), else a warning.
func tcpRoutesNotServed(self mesh.ObjectRef, out gammatranslator.Output) mesh.Diagnostic {
	var ports []string
	service := ""
	for _, r := range out.TCPRoutes {
		parent := r.Spec.ParentRefs[0] // the apex Service port, the only parent the translator writes
		service = string(parent.Name)
		ports = append(ports, strconv.Itoa(int(ptr.Deref(parent.Port, 0))))
	}
	severity := mesh.SeverityWarning
	if len(out.HTTPRoutes)+len(out.GRPCRoutes) == 0 {
		severity = mesh.SeverityError
	}
	noun := "port"
	if len(ports) > 1 {
		noun = "ports"
	}
	return mesh.Diagnostic{Object: self, Condition: smi.ConditionProgrammed, Reason: gammatranslator.ReasonTCPRouteNotServed, Severity: severity,
		Message: fmt.Sprintf("the cluster does not serve TCPRoute (%s), so none is written for %s %s of Service %q: traffic a mesh handles as TCP there is not split; %s",
			gatewayv1.GroupVersion, noun, strings.Join(ports, ", "), service, installTCPRoute)}
}
