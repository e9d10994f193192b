package triage

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/severity"
)

// lazyCounter resolves its labelled child on first use, so /metrics lists
// only the decisions made, and afterwards costs no label lookup.
type lazyCounter struct {
	once    sync.Once
	counter prometheus.Counter
}

func (c *lazyCounter) inc(vec *prometheus.CounterVec, sev severity.Level, rule int) {
	c.once.Do(func() { c.counter = vec.WithLabelValues(strconv.Itoa(int(sev)), strconv.Itoa(rule)) })
	c.counter.Inc()
}

// Metrics are the pipeline's Prometheus metrics.
type Metrics struct {
	// ActionRequests: requests to the action endpoints (Slack, PagerDuty)
	// by source and outcome (accepted, ignored, or why refused).
	ActionRequests  *prometheus.CounterVec
	WebhookRequests *prometheus.CounterVec
	WebhookDuration prometheus.Histogram
	AlertsReceived  *prometheus.CounterVec
	Decisions       *prometheus.CounterVec
	IncidentsOpen   *prometheus.GaugeVec
	IncidentEvents  *prometheus.CounterVec
	CommitDuration  *prometheus.HistogramVec
	CommitBatch     prometheus.Histogram
	InboxPending    prometheus.Gauge
	// Enrichment: time spent gathering signals and diagnoses, and how often
	// a source could not answer (the decision went on without it).
	EnrichmentDuration *prometheus.HistogramVec
	EnrichmentPartial  *prometheus.CounterVec
	Reevaluations      *prometheus.CounterVec
	// HeartbeatLastSeen is when each Alertmanager's heartbeat last arrived.
	HeartbeatLastSeen *prometheus.GaugeVec

	decisions [5][14]lazyCounter // by severity and rule
}

// decided counts one decision without a label lookup per alert.
func (m *Metrics) decided(d severity.Decision) {
	if d.Severity >= 1 && d.Severity <= 4 && d.Rule >= 1 && d.Rule <= 13 {
		m.decisions[d.Severity][d.Rule].inc(m.Decisions, d.Severity, d.Rule)
		return
	}
	m.Decisions.WithLabelValues(strconv.Itoa(int(d.Severity)), strconv.Itoa(d.Rule)).Inc()
}

// NewMetrics creates and registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ActionRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_action_requests_total",
			Help: "Requests to the action endpoints (POST /pagerduty/webhook) by source and outcome: accepted, ignored, or the reason refused (bad_signature, missing_signature, ...).",
		}, []string{"source", "outcome"}),
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_webhook_requests_total",
			Help: "Webhook requests by HTTP status code.",
		}, []string{"code"}),
		WebhookDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "amtriage_webhook_request_duration_seconds",
			Help:    "Time from request start to the durable acknowledgement (or error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		AlertsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_alerts_received_total",
			Help: "Alerts in acknowledged webhook notifications, by status.",
		}, []string{"status"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_decisions_total",
			Help: "Severity decisions made for firing alerts (new, changed or re-evaluated), by severity and deciding rule.",
		}, []string{"severity", "rule"}),
		IncidentsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amtriage_incidents_open",
			Help: "Open incidents by severity.",
		}, []string{"severity"}),
		IncidentEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_incident_events_total",
			Help: "Incident events (opened, severity_changed, resolved).",
		}, []string{"kind"}),
		CommitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "amtriage_store_commit_duration_seconds",
			Help:    "Durable store commit latency, by file (inbox: webhook group commit; state: incident changes).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}, []string{"file"}),
		CommitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "amtriage_inbox_commit_batch_size",
			Help:    "Webhook requests sharing one inbox commit (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		InboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amtriage_inbox_pending",
			Help: "Acknowledged notifications not yet processed.",
		}),
		EnrichmentDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "amtriage_enrichment_duration_seconds",
			Help:    "Time to ask the signal sources about the services of one processed batch or re-evaluation group (stage=signals), and to diagnose one service (stage=diagnosis).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17),
		}, []string{"stage"}),
		EnrichmentPartial: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_enrichment_partial_total",
			Help: "Evaluations of a service where a source could not answer (triage went on without it), by source.",
		}, []string{"source"}),
		Reevaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_reevaluations_total",
			Help: "Re-evaluations of open incidents, by outcome (raised, lowered, unchanged).",
		}, []string{"outcome"}),
		HeartbeatLastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amtriage_heartbeat_last_seen_timestamp_seconds",
			Help: "When the last heartbeat (heartbeat.alertname) of each Alertmanager, by externalURL, arrived: the dead man's switch.",
		}, []string{"alertmanager"}),
	}
	reg.MustRegister(m.EnrichmentDuration, m.EnrichmentPartial, m.Reevaluations, m.HeartbeatLastSeen, m.ActionRequests)
	reg.MustRegister(m.WebhookRequests, m.WebhookDuration, m.AlertsReceived, m.Decisions,
		m.IncidentsOpen, m.IncidentEvents, m.CommitDuration, m.CommitBatch, m.InboxPending)
	for _, s := range []string{"1", "2", "3", "4"} {
		m.IncidentsOpen.WithLabelValues(s)
	}

	return m
}
