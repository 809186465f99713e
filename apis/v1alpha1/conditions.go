package v1alpha1

// Condition types of an SMIOperator. Ready alone answers "is my mesh being programmed as I asked";
// Progressing and Degraded say why not, or what is partial, without making Ready flap: one broken
// TrafficSplit degrades the operator but does not make it un-ready, and a swap in progress is
// Progressing while the old backend still serves.
const (
	// ConditionReady is True when spec.backend is the active backend, its prerequisites are met
	// (Istio's APIs served, the xDS server listening) and it programs the SMI objects of
	// metadata.generation.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the operator moves to a new generation: a backend swap,
	// including the grace period in which the swapped-out backend still serves.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when some SMI objects could not be programmed in full
	// (status.smiObjects.withProblems > 0); their own conditions say why.
	ConditionDegraded = "Degraded"
)

// Condition reasons: stable CamelCase words for tools to match on; the message explains.
const (
	// ReasonBackendReady (Ready=True): the backend asked for programs the SMI objects.
	ReasonBackendReady = "BackendReady"
	// ReasonBackendUnavailable (Ready=False): the backend cannot run, e.g. Istio's APIs are not
	// served or the xDS port or TLS Secret cannot be used.
	ReasonBackendUnavailable = "BackendUnavailable"
	// ReasonSwapping (Ready=False, Progressing=True): the backend is being switched.
	ReasonSwapping = "Swapping"
	// ReasonDraining (Progressing=True): the new backend is active and the old one serves until
	// status.draining.until.
	ReasonDraining = "Draining"
	// ReasonSettled (Progressing=False): nothing is being switched.
	ReasonSettled = "Settled"
	// ReasonObjectsWithProblems (Degraded=True): some SMI objects have a False condition.
	ReasonObjectsWithProblems = "ObjectsWithProblems"
	// ReasonAllProgrammed (Degraded=False): every SMI object is programmed without problems.
	ReasonAllProgrammed = "AllProgrammed"
)
