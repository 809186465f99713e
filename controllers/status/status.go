// Package status turns what the operator found about an SMI object into its conditions, writes
// them to the status subresource only when they change, and emits an Event for every change.
package status

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/controllers/owned"
	"github.com/smi-operator/smi-operator/controllers/unobserved"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Reasons of True conditions, and of Programmed=False when the object was never taken on.
const (
	ReasonAccepted     = "Accepted"
	ReasonResolvedRefs = "ResolvedRefs"
	ReasonProgrammed   = "Programmed"
	ReasonNotAccepted  = "NotAccepted"
)

// Conditions derives the three conditions of an object from the diagnostics about it: a condition
// is False with the reason of its first error (of its first diagnostic when none is an error: a
// warning must not hide what stopped the object) and every diagnostic's message, whatever their
// severity (a backend dropped for a missing Service makes ResolvedRefs False, and the rest is still
// programmed); Programmed is also False when any error kept the object out of the backend.
func Conditions(generation int64, diags []mesh.Diagnostic) []metav1.Condition {
	byCondition := map[string][]mesh.Diagnostic{}
	failed := false
	for _, d := range diags {
		byCondition[d.Condition] = append(byCondition[d.Condition], d)
		failed = failed || d.Severity == mesh.SeverityError
	}
	condition := func(typ, trueReason string) metav1.Condition {
		c := metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: trueReason, ObservedGeneration: generation}
		if ds := byCondition[typ]; len(ds) > 0 {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, ds[0].Reason, messages(ds)
			if errs := errorsOf(ds); len(errs) > 0 {
				c.Reason = errs[0].Reason
			}
		}
		return c
	}
	accepted := condition(smi.ConditionAccepted, ReasonAccepted)
	resolved := condition(smi.ConditionResolvedRefs, ReasonResolvedRefs)
	programmed := condition(smi.ConditionProgrammed, ReasonProgrammed)
	switch {
	case accepted.Status == metav1.ConditionFalse:
		programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, ReasonNotAccepted, "not accepted: "+accepted.Message
	case failed && programmed.Status == metav1.ConditionTrue:
		programmed.Status, programmed.Reason, programmed.Message = metav1.ConditionFalse, firstError(diags).Reason, messages(errorsOf(diags))
	}
	return []metav1.Condition{accepted, resolved, programmed}
}

// Conflicts reports, as diagnostics on self, the wanted objects someone else owns.
func Conflicts(self mesh.ObjectRef, conflicts []owned.Conflict) []mesh.Diagnostic {
	out := make([]mesh.Diagnostic, 0, len(conflicts))
	for _, c := range conflicts {
		out = append(out, mesh.Diagnostic{Object: self, Condition: smi.ConditionAccepted, Reason: mesh.ReasonConflicted,
			Severity: mesh.SeverityError, Message: c.String() + "; it is left as it is"})
	}
	return out
}

// DiagnosticsOf keeps the diagnostics that belong on ref's status.
func DiagnosticsOf(diags []mesh.Diagnostic, ref mesh.ObjectRef) []mesh.Diagnostic {
	var out []mesh.Diagnostic
	for _, d := range diags {
		if d.Object == ref {
			out = append(out, d)
		}
	}
	return out
}

func messages(ds []mesh.Diagnostic) string {
	msgs := make([]string, 0, len(ds))
	for _, d := range ds {
		msgs = append(msgs, d.Message)
	}
	msg := strings.Join(msgs, "; ")
	if len(msg) > maxMessageLength {
		msg = strings.ToValidUTF8(msg[:maxMessageLength-len(truncated)], "") + truncated
	}
	return msg
}

// maxMessageLength stays under metav1.Condition's limit of 32768 bytes.
const maxMessageLength = 32000

const truncated = "… (truncated)"

func errorsOf(ds []mesh.Diagnostic) []mesh.Diagnostic {
	var out []mesh.Diagnostic
	for _, d := range ds {
		if d.Severity == mesh.SeverityError {
			out = append(out, d)
		}
	}
	return out
}

func firstError(ds []mesh.Diagnostic) mesh.Diagnostic { return errorsOf(ds)[0] }

// Writer writes conditions and their Events.
type Writer struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Unobserved, when set, keeps a reconcile that runs before the cache saw its previous status write
	// from sending it (and its Events) again.
	Unobserved *unobserved.Writes
}

// Changes reports whether conds would change obj's status.
func Changes(obj hub.Object, conds []metav1.Condition) bool {
	updated, _ := withConditions(obj, conds)
	return !equality.Semantic.DeepEqual(obj.GetStatus(), updated.GetStatus())
}

// withConditions returns a copy of obj with conds set on its status (keeping the transition times
// of conditions that did not change), and the conditions whose outcome is news: an Event each.
func withConditions(obj hub.Object, conds []metav1.Condition) (hub.Object, []metav1.Condition) {
	updated := obj.DeepCopyObject().(hub.Object)
	status := updated.GetStatus()
	status.ObservedGeneration = obj.GetGeneration()
	var changed []metav1.Condition
	for _, c := range conds {
		old := meta.FindStatusCondition(obj.GetStatus().Conditions, c.Type)
		sameOutcome := old != nil && old.Status == c.Status && old.Reason == c.Reason
		if !sameOutcome && (c.Status != metav1.ConditionTrue || c.Type == smi.ConditionProgrammed) {
			changed = append(changed, c)
		}
		meta.SetStatusCondition(&status.Conditions, c)
	}
	return updated, changed
}

// Update sets conds on obj's status (keeping transition times of conditions that did not change)
// and patches the status subresource if that changed anything. It emits a Warning Event for each
// condition that turned False or changed its reason while False, and one Normal Event when the
// object becomes Programmed: one Event per outcome, not one per condition, which at scale would
// triple the API writes of a reconcile.
func (w Writer) Update(ctx context.Context, obj hub.Object, conds []metav1.Condition) error {
	updated, changed := withConditions(obj, conds)
	if equality.Semantic.DeepEqual(obj.GetStatus(), updated.GetStatus()) {
		return nil
	}
	key := unobserved.Key{Kind: kindOf(obj), Namespace: obj.GetNamespace(), Name: obj.GetName(), Part: "status"}
	content := unobserved.Hash(conds)
	if w.Unobserved != nil && !w.Unobserved.Begin(key, content, obj.GetResourceVersion()) {
		return nil
	}
	if err := w.Client.Status().Patch(ctx, updated, client.MergeFrom(obj)); err != nil {
		if w.Unobserved != nil {
			w.Unobserved.Forget(key)
		}
		return err
	}
	for _, c := range changed {
		eventType := corev1.EventTypeNormal
		if c.Status != metav1.ConditionTrue {
			eventType = corev1.EventTypeWarning
		}
		note := c.Message
		if note == "" {
			note = c.Type + " is " + string(c.Status)
		}
		w.Recorder.Eventf(obj, nil, eventType, c.Reason, c.Type, "%s", note)
	}
	return nil
}
