package smioperator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

func cond(typ string, ok bool, gen int64) metav1.Condition {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, ObservedGeneration: gen}
}

// rejected is a Programmed=False condition saying proxies refused the object's configuration.
func rejected(gen int64) metav1.Condition {
	c := cond(smi.ConditionProgrammed, false, gen)
	c.Reason = mesh.ReasonRejectedByProxies
	return c
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		objects []objectStatus
		want    v1alpha1.ObjectCounts
	}{
		{"none", nil, v1alpha1.ObjectCounts{}},
		{"programmed", []objectStatus{{1, smi.Status{Conditions: []metav1.Condition{
			cond(smi.ConditionAccepted, true, 1), cond(smi.ConditionResolvedRefs, true, 1), cond(smi.ConditionProgrammed, true, 1)}}}},
			v1alpha1.ObjectCounts{Programmed: 1}},
		{"programmed with a dropped backend", []objectStatus{{2, smi.Status{Conditions: []metav1.Condition{
			cond(smi.ConditionAccepted, true, 2), cond(smi.ConditionResolvedRefs, false, 2), cond(smi.ConditionProgrammed, true, 2)}}}},
			v1alpha1.ObjectCounts{Programmed: 1, WithProblems: 1}},
		{"refused", []objectStatus{{1, smi.Status{Conditions: []metav1.Condition{
			cond(smi.ConditionAccepted, false, 1), cond(smi.ConditionProgrammed, false, 1)}}}},
			v1alpha1.ObjectCounts{WithProblems: 1}},
		{"not caught up with its generation: counts nowhere", []objectStatus{{3, smi.Status{Conditions: []metav1.Condition{
			cond(smi.ConditionAccepted, false, 2), cond(smi.ConditionProgrammed, true, 2)}}}},
			v1alpha1.ObjectCounts{}},
		{"no status yet", []objectStatus{{1, smi.Status{}}}, v1alpha1.ObjectCounts{}},
		{"rejected by proxies: a problem, counted apart", []objectStatus{{1, smi.Status{Conditions: []metav1.Condition{
			cond(smi.ConditionAccepted, true, 1), rejected(1)}}}, {2, smi.Status{Conditions: []metav1.Condition{rejected(1)}}}},
			v1alpha1.ObjectCounts{WithProblems: 1, RejectedByProxies: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, count(tc.objects)); d != "" {
				t.Errorf("count (-want +got):\n%s", d)
			}
		})
	}
}

func TestReport(t *testing.T) {
	until := metav1.NewTime(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name                         string
		state                        State
		counts                       v1alpha1.ObjectCounts
		ready, progressing, degraded metav1.ConditionStatus
		readyReason, progressReason  string
	}{
		{"the backend asked for runs", State{Active: v1alpha1.BackendIstio}, v1alpha1.ObjectCounts{Programmed: 3},
			metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, v1alpha1.ReasonBackendReady, v1alpha1.ReasonSettled},
		{"the backend asked for cannot run", State{Active: v1alpha1.BackendIstio, Unavailable: errors.New("port taken")}, v1alpha1.ObjectCounts{},
			metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable, v1alpha1.ReasonSettled},
		{"swapping: the old backend still programs", State{Active: v1alpha1.BackendIstio, Swapping: v1alpha1.BackendXDS, Pending: 4}, v1alpha1.ObjectCounts{},
			metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonSwapping, v1alpha1.ReasonSwapping},
		{"draining: ready, still progressing", State{Active: v1alpha1.BackendIstio, Draining: &v1alpha1.DrainingBackend{Backend: v1alpha1.BackendXDS, Until: until}},
			v1alpha1.ObjectCounts{Programmed: 1},
			metav1.ConditionTrue, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonBackendReady, v1alpha1.ReasonDraining},
		{"objects with problems degrade, not un-ready", State{Active: v1alpha1.BackendXDS}, v1alpha1.ObjectCounts{Programmed: 1, WithProblems: 2},
			metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionTrue, v1alpha1.ReasonBackendReady, v1alpha1.ReasonSettled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var status v1alpha1.SMIOperatorStatus
			report(&status, 7, tc.state, tc.counts)
			ready := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
			degraded := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionDegraded)
			progressing := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionProgressing)
			if ready == nil || ready.Status != tc.ready || ready.Reason != tc.readyReason || ready.ObservedGeneration != 7 {
				t.Errorf("Ready = %+v, want %s %s at generation 7", ready, tc.ready, tc.readyReason)
			}
			if degraded == nil || degraded.Status != tc.degraded {
				t.Errorf("Degraded = %+v, want %s", degraded, tc.degraded)
			}
			if progressing == nil || progressing.Status != tc.progressing || progressing.Reason != tc.progressReason {
				t.Errorf("Progressing = %+v, want %s %s", progressing, tc.progressing, tc.progressReason)
			}
			if status.ActiveBackend != tc.state.Active || status.ObservedGeneration != 7 || *status.SMIObjects != tc.counts ||
				!equality.Semantic.DeepEqual(status.Draining, tc.state.Draining) {
				t.Errorf("status = %+v", status)
			}
		})
	}
}

func TestFixedBackendReportsAnotherAsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		spec        *v1alpha1.SMIOperatorSpec
		unavailable bool
	}{
		{nil, false},
		{&v1alpha1.SMIOperatorSpec{}, false}, // defaults to istio
		{&v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendIstio}, false},
		{&v1alpha1.SMIOperatorSpec{Backend: v1alpha1.BackendXDS}, true},
	} {
		st, err := FixedBackend(v1alpha1.BackendIstio).MoveToward(context.Background(), tc.spec)
		if err != nil || st.Active != v1alpha1.BackendIstio || (st.Unavailable != nil) != tc.unavailable {
			t.Errorf("MoveToward(%+v) = %+v, %v; want istio active, unavailable %v", tc.spec, st, err, tc.unavailable)
		}
	}
}
