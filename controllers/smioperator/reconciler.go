// Package smioperator acts on the cluster's SMIOperator "default": it hands its spec to the
// backends (which swap when spec.backend changes) and reports, in its status, where they are and
// how the SMI objects fare: the active backend, a swap in progress or a backend draining, how
// many SMI objects are programmed and how many have problems, and the Ready, Progressing and
// Degraded conditions.
package smioperator

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Reconciler hands the SMIOperator singleton's spec to the backends and keeps its status.
type Reconciler struct {
	Client   client.Client
	Backends Backends
	// Recorder, when set, gets an Event on the SMIOperator for every condition that changes.
	Recorder events.EventRecorder
	// Changes, when set, delivers the backends' news (a swap got further) to reconcile again.
	Changes <-chan event.GenericEvent
}

// State is where the backends are, as the SMIOperator's status reports it.
type State struct {
	// Active is the backend that programs every SMI object now; empty when none does.
	Active v1alpha1.Backend
	// Unavailable says why the backend asked for cannot run; nil when it runs.
	Unavailable error
	// Swapping is the backend being brought up next to Active, which keeps programming until
	// Swapping has programmed the Pending SMI objects (and, for xds, Services) it had to.
	Swapping v1alpha1.Backend
	Pending  int
	// Draining is the backend swapped out that still serves its last configuration.
	Draining *v1alpha1.DrainingBackend
}

// Backends run what an SMIOperator asks for.
type Backends interface {
	// MoveToward moves the backends one step toward spec and reports where they are; a nil spec (no
	// SMIOperator) stops programming and removes what the backends generated.
	MoveToward(ctx context.Context, spec *v1alpha1.SMIOperatorSpec) (State, error)
}

// FixedBackend is the backend an operator runs when its --backend flag chooses: the SMIOperator's
// spec.backend is reported, not followed.
type FixedBackend v1alpha1.Backend

// MoveToward reports the fixed backend as active, and unavailable when the spec asks for another.
func (f FixedBackend) MoveToward(_ context.Context, spec *v1alpha1.SMIOperatorSpec) (State, error) {
	st := State{Active: v1alpha1.Backend(f)}
	if spec != nil && spec.WithDefaults().Backend != st.Active {
		st.Unavailable = fmt.Errorf("this operator runs with --backend=%s, which overrides spec.backend: "+
			"run it without --backend to let this resource choose the backend", f)
	}
	return st, nil
}

// UnavailableRetry is how soon a backend that cannot run is tried again (Istio installed, a TLS
// Secret created, a port freed): none of those is watched. An edit of the spec tries at once.
const UnavailableRetry = 30 * time.Second

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	op := &v1alpha1.SMIOperator{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: v1alpha1.SingletonName}, op); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		_, err := r.Backends.MoveToward(ctx, nil)
		return ctrl.Result{}, err
	}
	state, err := r.Backends.MoveToward(ctx, &op.Spec)
	if err != nil {
		return ctrl.Result{}, err
	}
	splits, targets := &hub.TrafficSplitList{}, &hub.TrafficTargetList{}
	// Only read, so the cache need not copy them: this runs on every SMI status change.
	if err := r.Client.List(ctx, splits, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Client.List(ctx, targets, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	next := op.DeepCopy()
	report(&next.Status, op.Generation, state, CountObjects(splits.Items, targets.Items))
	var result ctrl.Result
	switch {
	case state.Draining != nil:
		result.RequeueAfter = max(time.Until(state.Draining.Until.Time), time.Second)
	case state.Unavailable != nil:
		result.RequeueAfter = UnavailableRetry
	}
	if equality.Semantic.DeepEqual(op.Status, next.Status) {
		return result, nil
	}
	err = r.Client.Status().Patch(ctx, next, client.MergeFrom(op))
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	if err == nil {
		r.announce(op, op.Status.Conditions, next.Status.Conditions)
	}
	return result, err
}

// announce emits an Event for each condition whose status or reason changed: a swap starting,
// the new backend taking over, the old one done draining, a backend that cannot run.
func (r *Reconciler) announce(op *v1alpha1.SMIOperator, before, after []metav1.Condition) {
	if r.Recorder == nil {
		return
	}
	for _, c := range after {
		old := meta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		// A swap is routine: only a backend that cannot run and objects with problems warn.
		eventType := corev1.EventTypeNormal
		if (c.Type == v1alpha1.ConditionReady && c.Reason == v1alpha1.ReasonBackendUnavailable) ||
			(c.Type == v1alpha1.ConditionDegraded && c.Status == metav1.ConditionTrue) {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(op, nil, eventType, c.Reason, c.Type, "%s=%s: %s", c.Type, c.Status, c.Message)
	}
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
// (Programmed=True), with problems (Accepted, ResolvedRefs or Programmed False), and among these
// the ones proxies refused. An object
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
				if c.Type == smi.ConditionProgrammed && c.Reason == mesh.ReasonRejectedByProxies {
					out.RejectedByProxies++
				}
			}
		}
		if problem {
			out.WithProblems++
		}
	}
	return out
}

// report fills the status from where the backends are and the counts.
func report(status *v1alpha1.SMIOperatorStatus, generation int64, state State, counts v1alpha1.ObjectCounts) {
	status.ObservedGeneration = generation
	status.ActiveBackend = state.Active
	status.Draining = state.Draining
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
	keeps := "no backend programs them meanwhile"
	if state.Active != "" {
		keeps = fmt.Sprintf("the %s backend keeps programming them meanwhile", state.Active)
	}
	switch {
	case state.Unavailable != nil:
		set(v1alpha1.ConditionReady, false, v1alpha1.ReasonBackendUnavailable, state.Unavailable.Error()+"; "+keeps)
	case state.Swapping != "":
		set(v1alpha1.ConditionReady, false, v1alpha1.ReasonSwapping, fmt.Sprintf(
			"the %s backend has %d objects left to program (SMI objects, and Services for xds); %s", state.Swapping, state.Pending, keeps))
	default:
		set(v1alpha1.ConditionReady, true, v1alpha1.ReasonBackendReady, fmt.Sprintf("the %s backend programs the SMI objects", state.Active))
	}
	switch {
	case state.Swapping != "":
		set(v1alpha1.ConditionProgressing, true, v1alpha1.ReasonSwapping, fmt.Sprintf("swapping to the %s backend", state.Swapping))
	case state.Draining != nil:
		set(v1alpha1.ConditionProgressing, true, v1alpha1.ReasonDraining, fmt.Sprintf(
			"the %s backend serves its last configuration until %s, for proxies still connected to it",
			state.Draining.Backend, state.Draining.Until.UTC().Format(time.RFC3339)))
	default:
		set(v1alpha1.ConditionProgressing, false, v1alpha1.ReasonSettled, "no backend is being swapped")
	}
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
	b := ctrl.NewControllerManagedBy(mgr).
		Named("smioperator").
		For(&v1alpha1.SMIOperator{}).
		Watches(&hub.TrafficSplit{}, singleton).
		Watches(&hub.TrafficTarget{}, singleton)
	if r.Changes != nil {
		b = b.WatchesRawSource(source.Channel(r.Changes, singleton))
	}
	return b.Complete(r)
}
