// Package smioperator reports, on the cluster's SMIOperator "default", what the operator runs and
// how the SMI objects fare: the active backend, how many SMI objects are programmed and how many
// have problems, and the Ready and Degraded conditions.
//
// It does not yet act on the resource's spec: the backend and its settings still come from the
// operator's flags, and switching backends at run time (program the new one first, then retire
// the old one, with a grace period for the xDS server) is the next step. Until then, a spec asking
// for another backend than the one running is reported, not followed: Ready=False says which
// backend runs and how to get the other.
package smioperator

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
)

// Reconciler keeps the status of the SMIOperator singleton.
type Reconciler struct {
	Client client.Client
	// Active is the backend this operator runs (its --backend flag).
	Active v1alpha1.Backend
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	op := &v1alpha1.SMIOperator{}
	if err := r.Client.Get(ctx, req.NamespacedName, op); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	splits, targets := &hub.TrafficSplitList{}, &hub.TrafficTargetList{}
	if err := r.Client.List(ctx, splits); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Client.List(ctx, targets); err != nil {
		return ctrl.Result{}, err
	}
	next := op.DeepCopy()
	report(&next.Status, op.Generation, op.Spec.Backend, r.Active, CountObjects(splits.Items, targets.Items))
	if equality.Semantic.DeepEqual(op.Status, next.Status) {
		return ctrl.Result{}, nil
	}
	err := r.Client.Status().Patch(ctx, next, client.MergeFrom(op))
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// CountObjects counts TrafficSplits and TrafficTargets as status.smiObjects reports them.
func CountObjects(splits []hub.TrafficSplit, targets []hub.TrafficTarget) v1alpha1.ObjectCounts {
	statuses := make([]objectStatus, 0, len(splits)+len(targets))
	for i := range splits {
		statuses = append(statuses, objectStatus{generation: splits[i].Generation, status: splits[i].Status})
	}
	for i := range targets {
		statuses = append(statuses, objectStatus{generation: targets[i].Generation, status: targets[i].Status})
	}
	return count(statuses)
}

// objectStatus is what counting needs of an SMI object.
type objectStatus struct {
	generation int64
	status     smi.Status
}

// count counts the SMI objects whose conditions describe their current generation: programmed
// (Programmed=True) and with problems (Accepted, ResolvedRefs or Programmed False). An object
// the operator has not caught up with yet counts in neither.
func count(objects []objectStatus) v1alpha1.ObjectCounts {
	var out v1alpha1.ObjectCounts
	for _, o := range objects {
		problem := false
		for _, c := range o.status.Conditions {
			if c.ObservedGeneration != o.generation {
				continue
			}
			switch {
			case c.Type == smi.ConditionProgrammed && c.Status == metav1.ConditionTrue:
				out.Programmed++
			case c.Status == metav1.ConditionFalse &&
				(c.Type == smi.ConditionAccepted || c.Type == smi.ConditionResolvedRefs || c.Type == smi.ConditionProgrammed):
				problem = true
			}
		}
		if problem {
			out.WithProblems++
		}
	}
	return out
}

// report fills the status from the backend asked for, the one running and the counts.
func report(status *v1alpha1.SMIOperatorStatus, generation int64, wanted, active v1alpha1.Backend, counts v1alpha1.ObjectCounts) {
	status.ObservedGeneration = generation
	status.ActiveBackend = active
	status.SMIObjects = &counts
	set := func(typ string, ok bool, reason, message string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: message, ObservedGeneration: generation,
		})
	}
	if wanted == "" || wanted == active {
		set(v1alpha1.ConditionReady, true, v1alpha1.ReasonBackendReady, fmt.Sprintf("the %s backend programs the SMI objects", active))
	} else {
		set(v1alpha1.ConditionReady, false, v1alpha1.ReasonBackendUnavailable, fmt.Sprintf(
			"this operator runs the %s backend (its --backend flag) and cannot switch at run time yet: run it with --backend=%s",
			active, wanted))
	}
	set(v1alpha1.ConditionProgressing, false, v1alpha1.ReasonSettled, "no backend is being switched")
	if counts.WithProblems > 0 {
		set(v1alpha1.ConditionDegraded, true, v1alpha1.ReasonObjectsWithProblems,
			fmt.Sprintf("%d SMI objects have a False condition; their own status says why", counts.WithProblems))
	} else {
		set(v1alpha1.ConditionDegraded, false, v1alpha1.ReasonAllProgrammed, "no SMI object reports a problem")
	}
}

// SetupWithManager watches the singleton and the SMI objects whose conditions it counts.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	singleton := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: v1alpha1.SingletonName}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("smioperator").
		For(&v1alpha1.SMIOperator{}).
		Watches(&hub.TrafficSplit{}, singleton).
		Watches(&hub.TrafficTarget{}, singleton).
		Complete(r)
}
