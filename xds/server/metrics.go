package server

import "github.com/prometheus/client_golang/prometheus"

// metrics are the server's Prometheus metrics.
type metrics struct {
	connected *prometheus.GaugeVec
	pushes    *prometheus.CounterVec
	acks      *prometheus.CounterVec
	nacks     *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	services  prometheus.Gauge
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
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.pushes, m.acks, m.nacks, m.rejected, m.services)
	}
	return m
}
