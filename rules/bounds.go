package rules

import (
	"cmp"
	"fmt"
	"math"
	"time"
)

// limit is the documented range of one numeric or duration key. Values
// outside it are refused: a typo such as max_pending: 100000000000 would
// otherwise allocate until the process dies, and a 1 ms timeout would make
// every signal unknown. Adding a key is one line in limits.
type limit struct {
	key      string
	min, max int64
	off      bool   // 0 is accepted: it turns the feature off, or means zero's text
	zero     string // what 0 means, for messages; default "off"
	duration bool   // min, max and the value are time.Duration
	get      func(*Config) int64
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	day = 24 * time.Hour
)

func dur(d Duration) int64 { return int64(d) }

var limits = []limit{
	{key: "intake.max_body_bytes", min: kib, max: gib, get: func(c *Config) int64 { return c.Intake.MaxBodyBytes }},
	// Each pending request holds a queue slot; a million is far past any
	// Alertmanager fleet and costs 8 MB of slots.
	{key: "intake.max_pending", min: 1, max: 1_000_000, get: func(c *Config) int64 { return int64(c.Intake.MaxPending) }},
	{key: "intake.max_inflight_bytes", min: kib, max: 16 * gib, get: func(c *Config) int64 { return c.Intake.MaxInflightBytes }},
	{key: "intake.min_body_rate", off: true, min: 1, max: gib, get: func(c *Config) int64 { return c.Intake.MinBodyRate }},
	// Staleness is written at most once a minute, so that resent groups
	// cost no writes: shorter than a few minutes would resolve alerts that
	// are still being delivered.
	{key: "incidents.stale_after", off: true, duration: true, min: int64(10 * time.Minute), max: int64(30 * day), get: func(c *Config) int64 { return dur(c.Incidents.StaleAfter) }},
	{key: "incidents.retention", duration: true, min: int64(time.Hour), max: int64(365 * day), get: func(c *Config) int64 { return dur(c.Incidents.Retention) }},
	{key: "incidents.sev1_updates", duration: true, min: int64(30 * time.Second), max: int64(day), get: func(c *Config) int64 { return dur(c.Incidents.Sev1Updates) }},
	{key: "incidents.sev2_updates", duration: true, min: int64(30 * time.Second), max: int64(day), get: func(c *Config) int64 { return dur(c.Incidents.Sev2Updates) }},
	// Short ones only make sense in tests: a minute of quiet proves little.
	{key: "incidents.monitor_for", duration: true, min: int64(time.Second), max: int64(30 * day), get: func(c *Config) int64 { return dur(c.Incidents.MonitorFor) }},
	{key: "incidents.verify_every", duration: true, min: int64(time.Second), max: int64(time.Hour), get: func(c *Config) int64 { return dur(c.Incidents.VerifyEvery) }},
	{key: "incidents.verify_timeout", duration: true, min: int64(time.Second), max: int64(7 * day), get: func(c *Config) int64 { return dur(c.Incidents.VerifyTimeout) }},
	reevaluateLimit(1), reevaluateLimit(2), reevaluateLimit(3), reevaluateLimit(4),
	// Seconds only in tests; past a day nobody is waiting for the escalation.
	{key: "escalation.after", off: true, duration: true, min: int64(time.Second), max: int64(day), get: func(c *Config) int64 { return dur(c.Escalation.After) }},
	{key: "prometheus.timeout", duration: true, min: int64(100 * time.Millisecond), max: int64(time.Minute), get: func(c *Config) int64 { return dur(c.Prometheus.Timeout) }},
	// A trend needs several scrapes.
	{key: "prometheus.trend_window", duration: true, min: int64(time.Minute), max: int64(day), get: func(c *Config) int64 { return dur(c.Prometheus.TrendWindow) }},
	{key: "probes.timeout", duration: true, min: int64(100 * time.Millisecond), max: int64(time.Minute), get: func(c *Config) int64 { return dur(c.Probes.Timeout) }},
	{key: "kubernetes.rollout_window", duration: true, min: int64(time.Minute), max: int64(7 * day), get: func(c *Config) int64 { return dur(c.Kubernetes.RolloutWindow) }},
	{key: "kubernetes.event_window", duration: true, min: int64(time.Minute), max: int64(day), get: func(c *Config) int64 { return dur(c.Kubernetes.EventWindow) }},
	{key: "kubernetes.log_timeout", duration: true, min: int64(100 * time.Millisecond), max: int64(time.Minute), get: func(c *Config) int64 { return dur(c.Kubernetes.LogTimeout) }},
	{key: "kubernetes.log_bytes", min: kib, max: 16 * mib, get: func(c *Config) int64 { return c.Kubernetes.LogBytes }},
	{key: "pagerduty.events_per_minute", off: true, zero: "the receiver's default, 120", min: 1, max: 1_000_000, get: func(c *Config) int64 { return int64(c.PagerDuty.EventsPerMinute) }},
	{key: "grafana.panel_id", min: 0, max: math.MaxInt32, get: func(c *Config) int64 { return c.Grafana.PanelID }},
	// A rendered panel is kept up to 256 KiB (see triage/evidence): past
	// a few megapixels it would be clipped anyway.
	{key: "grafana.render.width", min: 100, max: 4000, get: func(c *Config) int64 { return int64(c.Grafana.Render.Width) }},
	{key: "grafana.render.height", min: 100, max: 4000, get: func(c *Config) int64 { return int64(c.Grafana.Render.Height) }},
	{key: "grafana.render.timeout", duration: true, min: int64(time.Second), max: int64(2 * time.Minute), get: func(c *Config) int64 { return dur(c.Grafana.Render.Timeout) }},
	// The heartbeat is resent every repeat_interval of its route: silence
	// must last several of those before it means anything (a minute in
	// deploy/alertmanager-receiver.yml; seconds only in tests).
	{key: "heartbeat.missing_after", off: true, zero: "the default, 15m", duration: true, min: int64(10 * time.Second), max: int64(day), get: func(c *Config) int64 { return dur(c.Heartbeat.MissingAfter) }},
	{key: "delivery.concurrency", off: true, zero: "the default, 32", min: 1, max: MaxDeliveryConcurrency, get: func(c *Config) int64 { return int64(c.Delivery.Concurrency) }},
	{key: "delivery.max_retry_after", off: true, zero: "the default, 1h", duration: true, min: int64(time.Second), max: int64(day), get: func(c *Config) int64 { return dur(c.Delivery.MaxRetryAfter) }},
}

func reevaluateLimit(sev int) limit {
	return limit{key: fmt.Sprintf("incidents.reevaluate.%d", sev), off: true, duration: true, min: int64(5 * time.Second), max: int64(day),
		get: func(c *Config) int64 { return dur(c.Incidents.Reevaluate[sev]) }}
}

// Ranges of keys that repeat per service profile (or per thresholds
// section), checked where those sections are.
var (
	latencyBaselineLimit = limit{off: true, zero: "none", duration: true, min: int64(time.Millisecond), max: int64(time.Hour)}
	highP99Limit         = limit{duration: true, min: int64(time.Millisecond), max: int64(time.Hour)}
)

// maxLatencyFactor bounds the latency factors: past it no measured p99 could
// reach the threshold and the rule would silently never fire.
const maxLatencyFactor = 1000

// limits checks the keys the file sets; left-out keys get their defaults,
// which are within range (TestDefaultsWithinLimits).
func (v *validator) limits(c *Config) {
	for _, l := range limits {
		if _, set := v.t.byPath[l.key]; set {
			v.inRange(l.key, l, l.get(c))
		}
	}
}

// inRange reports val outside l's range, naming the key and the range.
func (v *validator) inRange(key string, l limit, val int64) {
	if (val == 0 && l.off) || (val >= l.min && val <= l.max) {
		return
	}
	show := func(n int64) string {
		if l.duration {
			return Duration(n).String()
		}
		return fmt.Sprint(n)
	}
	zero := ""
	if l.off {
		zero = "0 (" + cmp.Or(l.zero, "off") + ") or "
	}
	v.failf(key, "must be %sbetween %s and %s, got %s", zero, show(l.min), show(l.max), show(val))
}
