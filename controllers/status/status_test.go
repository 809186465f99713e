package status

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

func TestConditions(t *testing.T) {
	self := mesh.ObjectRef{Kind: smi.TrafficSplitKind, Namespace: "shop", Name: "web"}
	diag := func(condition, reason string, sev mesh.Severity) mesh.Diagnostic {
		return mesh.Diagnostic{Object: self, Condition: condition, Reason: reason, Severity: sev, Message: reason + " happened"}
	}
	type want struct{ accepted, resolved, programmed string } // "True" or the False reason
	tests := []struct {
		name  string
		diags []mesh.Diagnostic
		want  want
	}{
		{"nothing to report", nil, want{"True", "True", "True"}},
		{"a missing backend is dropped, the rest programmed", []mesh.Diagnostic{diag(smi.ConditionResolvedRefs, mesh.ReasonBackendNotFound, mesh.SeverityWarning)},
			want{"True", mesh.ReasonBackendNotFound, "True"}},
		{"a conflict keeps the object out", []mesh.Diagnostic{diag(smi.ConditionAccepted, mesh.ReasonConflicted, mesh.SeverityError)},
			want{mesh.ReasonConflicted, "True", ReasonNotAccepted}},
		{"nothing to program", []mesh.Diagnostic{diag(smi.ConditionProgrammed, mesh.ReasonNoWeightedBackends, mesh.SeverityError)},
			want{"True", "True", mesh.ReasonNoWeightedBackends}},
		{"an error on references also stops programming", []mesh.Diagnostic{diag(smi.ConditionResolvedRefs, mesh.ReasonApexNotFound, mesh.SeverityError)},
			want{"True", mesh.ReasonApexNotFound, mesh.ReasonApexNotFound}},
		{"a warning on programming is not hidden", []mesh.Diagnostic{diag(smi.ConditionProgrammed, mesh.ReasonNoWorkloads, mesh.SeverityWarning)},
			want{"True", "True", mesh.ReasonNoWorkloads}},
		// BackendNotFound sorts before ServiceNotFound: the reason must come from the error anyway.
		{"an error's reason wins over a warning's", []mesh.Diagnostic{
			diag(smi.ConditionResolvedRefs, mesh.ReasonBackendNotFound, mesh.SeverityWarning),
			diag(smi.ConditionResolvedRefs, mesh.ReasonServiceNotFound, mesh.SeverityError)},
			want{"True", mesh.ReasonServiceNotFound, mesh.ReasonServiceNotFound}},
		{"a name taken by someone else", Conflicts(self, []owned.Conflict{{Kind: "VirtualService", Name: "web"}}),
			want{mesh.ReasonConflicted, "True", ReasonNotAccepted}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conds := Conditions(3, tc.diags)
			got := map[string]string{}
			for _, c := range conds {
				if c.ObservedGeneration != 3 {
					t.Errorf("%s: observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
				}
				if c.Status == metav1.ConditionTrue {
					got[c.Type] = "True"
				} else {
					got[c.Type] = c.Reason
					if c.Message == "" {
						t.Errorf("%s is False without a message", c.Type)
					}
				}
			}
			w := map[string]string{smi.ConditionAccepted: tc.want.accepted, smi.ConditionResolvedRefs: tc.want.resolved, smi.ConditionProgrammed: tc.want.programmed}
			for typ, reason := range w {
				if got[typ] != reason {
					t.Errorf("%s = %q, want %q", typ, got[typ], reason)
				}
			}
		})
	}
}

func TestConditionMessagesFitTheAPILimit(t *testing.T) {
	self := mesh.ObjectRef{Kind: smi.TrafficTargetKind, Namespace: "shop", Name: "api"}
	var diags []mesh.Diagnostic
	for range 2000 {
		diags = append(diags, mesh.Diagnostic{Object: self, Condition: smi.ConditionResolvedRefs, Reason: mesh.ReasonRouteNotFound,
			Severity: mesh.SeverityWarning, Message: "HTTPRouteGroup \"a-route-with-a-long-name\" does not exist"})
	}
	for _, c := range Conditions(1, diags) {
		if len(c.Message) > 32768 {
			t.Errorf("%s message is %d bytes, over the API's 32768", c.Type, len(c.Message))
		}
	}
}
