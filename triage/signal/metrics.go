package signal

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics time the sources' outbound requests. One histogram for all of
// them keeps dashboards simple: filter by source, split by outcome.
type Metrics struct {
	Requests *prometheus.HistogramVec
}

// NewMetrics creates and registers the source metrics on reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "amtriage_signal_request_duration_seconds",
			Help: "Latency of the signal sources' requests (Prometheus queries, health probes, pod logs) by source and outcome.",
			// From a loopback query (~1 ms) to a deadline (2 s default).
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"source", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests)
	}
	return m
}

// Observe records one request. A nil Metrics records nothing.
func (m *Metrics) Observe(source, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.Requests.WithLabelValues(source, outcome).Observe(d.Seconds())
}
