package backends

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi/hub"
	"github.com/smi-operator/smi-operator/apis/v1alpha1"
	"github.com/smi-operator/smi-operator/controllers/namespace"
	"github.com/smi-operator/smi-operator/controllers/service"
	"github.com/smi-operator/smi-operator/controllers/smiobject"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// Backend is a mesh backend an SMIOperator can select (spec.backend): it starts the Instances that
// program the SMI objects, and cleans up after them. The Switch calls it under its own lock, one
// call at a time, so a Backend needs no lock for what only these calls touch.
//
// Adding a backend is a package implementing Backend and Instance, and its line in the list the
// Switch is built with (Options.Backends).
type Backend interface {
	// Name is the spec.backend value that selects it.
	Name() v1alpha1.Backend
	// Start returns a new instance programming with settings and the spec's settings of this
	// backend, or an error saying why it cannot run (shown in the SMIOperator's status). The
	// instance running now, if any, keeps running (and programming) until it returns: a backend
	// whose instances cannot run side by side (a port) calls stopRunning, which stops it, after
	// everything that can fail on a bad setting has been checked.
	Start(ctx context.Context, env Env, spec v1alpha1.SMIOperatorSpec, settings mesh.Settings, stopRunning func()) (Instance, error)
	// Clean deletes what earlier instances left in the cluster (the Istio backend: every object it
	// generated). It is called whenever the backend is not the one asked for and runs no
	// instance, so it must be cheap once clean.
	Clean(ctx context.Context, env Env) error
}

// Instance is a backend running with one configuration. The sinks take every object while it is
// being brought up or active; the Switch records what each has programmed, and retires the
// instance when it is replaced or another backend has programmed everything.
type Instance interface {
	Splits() smiobject.Backend[*hub.TrafficSplit]
	Targets() smiobject.Backend[*hub.TrafficTarget]
	Policies() smiobject.Backend[*policyv1alpha1.TrafficPolicy]
	Namespaces() namespace.Sink
	// Services is where Services and their endpoints go; nil when the backend takes none.
	Services() service.Sink
	// Fits says whether the instance already runs as spec and settings ask, so that no new one is
	// started; one that failed fits nothing.
	Fits(spec v1alpha1.SMIOperatorSpec, settings mesh.Settings) bool
	// Activate is called once, when the instance has programmed every object and is in charge.
	Activate()
	// Retire stops it taking updates. It returns until when it keeps serving what it has to the
	// proxies still connected (spec says how long it may); a zero time: stop it now.
	Retire(spec v1alpha1.SMIOperatorSpec) (drainUntil time.Time)
	// Failed says it stopped serving on its own: a draining instance that failed is dropped.
	Failed() bool
	// Stop stops it and waits until it has.
	Stop()
}

// Env is what the Switch gives a backend to run with.
type Env struct {
	Manager manager.Manager
	// Controllers are the operator's, to which a backend adds the watches it needs (once: the
	// manager cannot remove them), filtered by Programming.
	Controllers Controllers
	// RunContext ends when the operator stops: an instance's servers run under it.
	RunContext context.Context
	// Programming says whether an instance of the backend takes updates now (being brought up,
	// or active): the predicate of the watches it adds.
	Programming func() bool
	// Resync has the SMI objects named reconciled again, so that their status is written anew.
	Resync func([]mesh.ObjectRef)
	// Wake has the Switch look at the backends again soon (an instance failed).
	Wake func()
	Log  logr.Logger
}

// Controllers are the controllers of the SMI kinds, TrafficPolicies, Services and Namespaces.
type Controllers struct {
	Splits, Targets, Policies, Services, Namespaces controller.Controller
}
