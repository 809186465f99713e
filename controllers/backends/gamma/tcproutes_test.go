package gamma

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	gammatranslator "github.com/smi-operator/smi-operator/translators/gamma"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestTCPRoutesNotServed: a split whose every route is a TCPRoute gets nothing written (an
// error); one with other routes keeps them (a warning). The message names the ports and what to
// install.
func TestTCPRoutesNotServed(t *testing.T) {
	split := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: "shop", Name: "db"}
	tcpRoute := func(port int32) *gatewayv1.TCPRoute {
		r := &gatewayv1.TCPRoute{}
		r.Spec.ParentRefs = []gatewayv1.ParentReference{{Name: "db", Port: ptr.To(gatewayv1.PortNumber(port))}}
		return r
	}
	tests := []struct {
		name     string
		out      gammatranslator.Output
		severity mesh.Severity
		ports    string
	}{
		{"only TCPRoutes", gammatranslator.Output{TCPRoutes: []*gatewayv1.TCPRoute{tcpRoute(5432), tcpRoute(6379)}}, mesh.SeverityError, "ports 5432, 6379 "},
		{"an HTTPRoute too", gammatranslator.Output{HTTPRoutes: []*gatewayv1.HTTPRoute{{}}, TCPRoutes: []*gatewayv1.TCPRoute{tcpRoute(80)}}, mesh.SeverityWarning, "port 80 "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tcpRoutesNotServed(split, tc.out)
			if d.Object != split || d.Condition != smi.ConditionProgrammed || d.Reason != gammatranslator.ReasonTCPRouteNotServed || d.Severity != tc.severity {
				t.Errorf("got %v, want Programmed=False %s (%s) on the split", d, gammatranslator.ReasonTCPRouteNotServed, tc.severity)
			}
			for _, want := range []string{tc.ports + `of Service "db"`, "v1.6"} {
				if !strings.Contains(d.Message, want) {
					t.Errorf("message %q does not say %q", d.Message, want)
				}
			}
		})
	}
}
