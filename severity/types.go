// Package severity is the incident-response decision tree: pure functions from
// signals to a severity and its reasons. It does no I/O.
package severity

import "time"

// Level is an incident severity, 1 (critical) to 4 (informational).
type Level int

// Bool is a boolean signal that may be unknown. Source names where the value
// came from ("annotation", "label", "profile", "probe", "prometheus", "kubernetes");
// Note says why it is unknown or how it was derived.
type Bool struct {
	Known  bool   `json:"known"`
	Value  bool   `json:"value"`
	Source string `json:"source,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Float is a numeric signal that may be unknown; see Bool for Source and Note.
type Float struct {
	Known  bool    `json:"known"`
	Value  float64 `json:"value"`
	Source string  `json:"source,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// Signals are what one alert is triaged on. Every signal may be unknown.
//
// An unknown signal without a note is left out of the JSON: decisions are
// stored with every alert and carried in events.
type Signals struct {
	Reachable       Bool  `json:"reachable,omitzero"`
	ErrorRatio      Float `json:"error_ratio,omitzero"`      // share of requests failing, 0..1
	LatencyFactor   Float `json:"latency_factor,omitzero"`   // p99 ÷ normal
	P99Latency      Float `json:"p99_latency,omitzero"`      // seconds
	LatencyBaseline Float `json:"latency_baseline,omitzero"` // seconds, the "normal" p99
	Recovering      Bool  `json:"recovering,omitzero"`
	DataLoss        Bool  `json:"data_loss,omitzero"`
	ImpactNone      Bool  `json:"impact_none,omitzero"` // true when impact is "none"
	// AlertSeverity is the alert's `severity` label, used only by rule 13.
	AlertSeverity string `json:"alert_severity,omitempty"`
}

// Thresholds are the decision tree's boundaries; DefaultThresholds gives the
// SPEC's values and service profiles may override any of them.
type Thresholds struct {
	OutageErrorRatio   float64       // rule 2: error_ratio > this → Sev 1 (0.50)
	MajorErrorRatio    float64       // rule 3: error_ratio ≥ this → Sev 2 (0.10)
	MinorErrorRatio    float64       // rule 5: error_ratio ≥ this → Sev 3 (0.05)
	ImpactFloor        float64       // rule 11: error_ratio ≥ this → Sev 3 (0.01)
	MajorLatencyFactor float64       // rule 4: latency_factor ≥ this → Sev 2 (10)
	MinorLatencyFactor float64       // rule 6: latency_factor ≥ this → Sev 3 (2)
	HighP99            time.Duration // rule 6: p99 > this with no baseline → Sev 3 (2s)
	// Fallback maps a lower-case alert `severity` label to a level (rule 13);
	// labels not in the map get FallbackDefault.
	Fallback        map[string]Level
	FallbackDefault Level
}

// Decision is the outcome of the decision tree for one alert.
type Decision struct {
	Severity Level `json:"severity"`
	Rule     int   `json:"rule"` // 1..13, the SPEC's rule that decided
	// Reasons: first the deciding rule's reason with values and sources, e.g.
	// "Q2: 62% of requests failing (> 50%) [prometheus]", then one line per signal.
	Reasons []string `json:"reasons,omitempty"`
	Signals Signals  `json:"signals"`
}
