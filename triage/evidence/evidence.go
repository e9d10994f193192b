// Package evidence is the runbook's Step 4C, "gather data for debugging",
// done when a Sev 1 or 2 incident is declared: the workload's Kubernetes
// snapshot with its Warning events, the latest log lines, the profile's
// queries over the last 30 minutes and PNGs of Grafana panels. It runs
// after the page is enqueued, in the background, with bounded concurrency
// and a deadline, and stores what it found with the incident, bounded in
// size.
package evidence

import (
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/prom"
)

// The bounds of one incident's evidence. What is larger is clipped, with a
// mark saying how much was left out ("… clipped: N bytes more").
const (
	// MaxBytes bounds an incident's stored evidence: the record and its PNGs.
	MaxBytes = 2 << 20
	// MaxPNGBytes bounds one panel's PNG; a larger one is not kept (a cut
	// PNG is no image), its size is.
	MaxPNGBytes = 256 << 10
	// MaxLogBytes bounds the log lines, the latest kept.
	MaxLogBytes = 64 << 10
	// MaxSeries and MaxPoints bound each query's answer: 30 minutes at
	// Step is 181 points.
	MaxSeries = 10
	MaxPoints = 181
	// Window is how far back the queries and panels look from declaration.
	Window = 30 * time.Minute
	// Step is the range queries' resolution.
	Step = 10 * time.Second
)

// Evidence is what was gathered for one incident at its declaration.
type Evidence struct {
	Incident string `json:"incident"`
	Service  string `json:"service"`
	Severity int    `json:"severity"`
	// Trigger is the event that declared it at Sev 1–2: "opened" or
	// "severity_changed".
	Trigger     string    `json:"trigger"`
	DeclaredAt  time.Time `json:"declaredAt"`
	CollectedAt time.Time `json:"collectedAt"`
	// From and To are the window of the queries and panels.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Snapshot is the workload as kubectl would show it (its Warning
	// events are in Events).
	Snapshot *diagnosis.Snapshot `json:"snapshot,omitempty"`
	Events   []diagnosis.Event   `json:"events,omitempty"`
	Logs     *kube.Tail          `json:"logs,omitempty"`
	Queries  []Query             `json:"queries,omitempty"`
	Panels   []Panel             `json:"panels,omitempty"`
	// Missing says what could not be gathered, and why.
	Missing []string `json:"missing,omitempty"`
	// Bytes is the stored size: the record and its PNGs.
	Bytes int `json:"bytes"`
}

// Query is one of the profile's queries as a range query over the window.
type Query struct {
	Name  string `json:"name"` // the profile key: error_ratio, p99_latency…
	Query string `json:"query"`
	Step  string `json:"step"`
	*prom.RangeAnswer
	Error string `json:"error,omitempty"`
}

// Panel is one rendered Grafana panel. The PNG is stored beside the
// record and served at /api/incidents/{id}/evidence/panels/{panel}.png.
type Panel struct {
	ID     int64  `json:"panelId"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int    `json:"bytes,omitempty"` // of the PNG kept
	URL    string `json:"url,omitempty"`   // where amtriage serves it, relative to the API
	Error  string `json:"error,omitempty"`
	// Clipped: the PNG was over MaxPNGBytes (or the incident's bound) and
	// is not kept.
	Clipped string `json:"clipped,omitempty"`

	png []byte
}

// PNG is the panel's image, when kept.
func (p *Panel) PNG() []byte { return p.png }
