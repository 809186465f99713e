package status

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// writeFailures makes failing status writes visible: WriteQueue retries them for as long as they
// fail, with a growing backoff, and nothing else would show that statuses are not landing.
var writeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "smi_operator_status_write_failures_total",
	Help: "Status writes of SMI objects that failed (each is retried with a growing backoff), by kind.",
}, []string{"kind"})

func init() { metrics.Registry.MustRegister(writeFailures) }
