package server

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	connected *prometheus.GaugeVec
	pushes    *prometheus.CounterVec
	acks      *prometheus.CounterVec
	nacks     *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	services  prometheus.Gauge
	// certificates counts CSRs by result.
	certificates *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smi_operator_xds_connected_proxies",
			Help: "ADS streams open, by proxy kind (grpc or envoy).",
		}, []string{"proxy"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smi_operator_xds_pushes_total",
			Help: "xDS responses sent, by resource type.",
		}, []string{"type"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smi_operator_xds_acks_total",
			Help: "xDS responses proxies accepted, by resource type.",
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smi_operator_xds_nacks_total",
			Help: "xDS responses proxies rejected (they keep their last good configuration), by resource type.",
		}, []string{"type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smi_operator_xds_rejected_streams_total",
			Help: "ADS streams or requests refused, by reason.",
		}, []string{"reason"}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smi_operator_xds_services",
			Help: "Services the xDS server serves.",
		}),
		certificates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smi_operator_xds_certificate_requests_total",
			Help: "CSRs pod agents sent, by result (issued, or why refused).",
		}, []string{"result"}),
	}
	if reg != nil {
		m.connected = register(reg, m.connected)
		m.pushes = register(reg, m.pushes)
		m.acks = register(reg, m.acks)
		m.nacks = register(reg, m.nacks)
		m.rejected = register(reg, m.rejected)
		m.services = register(reg, m.services)
		m.certificates = register(reg, m.certificates)
	}
	return m
}

// register registers c, or returns the collector registered before under the same name: the
// operator replaces its xDS server when the SMIOperator's settings change (one at a time), and
// the replacement carries on the same series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("registering xDS metrics: %v", err))
	}
	return c
}
