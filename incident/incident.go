// Package incident is the incident lifecycle as a pure state machine: triaged
// alerts in, incident changes and events out. It does no I/O; the caller
// persists the Changes it returns in the same transaction as its input.
package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/severity"
)

// Status of an alert or an incident, as Alertmanager spells it.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// How an alert came to be resolved. Only a resolution Alertmanager itself sent
// is final: an inferred one is undone if the occurrence is seen firing again.
const (
	ByAlertmanager = "alertmanager" // a resolved alert in a notification
	ByAbsence      = "absent"       // missing from a complete (untruncated) group notification
	ByStaleness    = "stale"        // not seen in any notification for stale_after
)

// Alert is one alert occurrence (fingerprint + startsAt) inside an incident.
type Alert struct {
	Key          string            `json:"key,omitempty"`
	Fingerprint  string            `json:"fingerprint,omitempty"`
	Name         string            `json:"alertname,omitempty"`
	Status       string            `json:"status"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	// GroupKey, ExternalURL and Receiver name the Alertmanager group that
	// last delivered it: the scope of resolution by absence. Records stored
	// before the scope had all three have GroupKey alone, a scope no
	// notification matches until the alert is delivered again.
	GroupKey    string            `json:"groupKey,omitempty"`
	ExternalURL string            `json:"externalURL,omitempty"`
	Receiver    string            `json:"receiver,omitempty"`
	Decision    severity.Decision `json:"decision"`
	LastSeen    time.Time         `json:"lastSeen,omitzero"`
	ResolvedBy  string            `json:"resolvedBy,omitempty"`
	// seen is the book's mark of the last notification that listed it.
	seen uint64
}

// Incident is the alerts of one service firing together.
type Incident struct {
	ID      string `json:"id"`
	Service string `json:"service"` // as displayed and routed
	// Unit is what its alerts are grouped by when that is not the service:
	// the Alertmanager group (externalURL + groupKey) of alerts that name no
	// service, or the Alertmanager a missing heartbeat is about. Empty: the
	// service. It keeps the incident's identity across restarts.
	Unit string `json:"unit,omitempty"`
	// Profile is the service profile every alert the incident had matched;
	// "" when one did not (its Service then comes from a label). The
	// public status page shows only incidents of a public profile.
	Profile      string         `json:"profile,omitempty"`
	Title        string         `json:"title"`
	Status       string         `json:"status"`
	Severity     severity.Level `json:"severity"`
	PeakSeverity severity.Level `json:"peakSeverity"`
	Rule         int            `json:"rule"`
	Reasons      []string       `json:"reasons,omitempty"`
	Decisive     string         `json:"decisiveAlert"`       // key of the alert whose decision is the incident's
	StartedAt    time.Time      `json:"started"`             // detection: earliest startsAt, UTC
	LastStatus   time.Time      `json:"lastStatus,omitzero"` // when the last event (or status update) went out
	ResolvedAt   time.Time      `json:"resolved,omitzero"`
	ExternalURL  string         `json:"externalURL,omitempty"`
	Firing       int            `json:"alertsFiring"`
	// Left counts the members that resolved while the incident stayed open:
	// they leave it, tombstones remember them.
	Left int `json:"alertsLeft,omitempty"`
	// LeftEnded is the latest endsAt of those, for the incident's end.
	LeftEnded time.Time `json:"leftEnded,omitzero"`
	// LastEvaluated is when the incident was last triaged with fresh
	// signals: on open, and at each re-evaluation.
	LastEvaluated time.Time `json:"lastEvaluated,omitzero"`
	// Diagnosis is the runbook's quick diagnosis, from the latest evaluation
	// that made one; nil without Kubernetes or probes to look at.
	Diagnosis *diagnosis.Diagnosis `json:"diagnosis,omitempty"`
	// Sev1At is when it was first declared Sev 1, which escalation.after
	// counts from; EscalatedAt when it was escalated (once; see escalation.go).
	Sev1At      time.Time `json:"sev1At,omitzero"`
	EscalatedAt time.Time `json:"escalated,omitzero"`
	// Alerts are the firing members of an open incident (and those that
	// resolved in the step in hand), keyed by occurrence. A resolved
	// incident keeps none in memory: tombstones remember them.
	Alerts map[string]*Alert `json:"-"`

	// Where are the decisive alert's labels that name its workload
	// (namespace, deployment, pod, service): recovery is verified on it
	// after the alerts have gone.
	Where map[string]string `json:"where,omitempty"`
	// State is the lifecycle's (open, verifying, monitoring, closed);
	// Status stays the alerts' firing/resolved. Recurrences counts reopenings.
	State       string `json:"state"`
	Recurrences int    `json:"recurrences,omitempty"`
	// VerifyingSince, MonitoringSince and ClosedAt are when it entered
	// those states (the latest time, after a reopening).
	VerifyingSince  time.Time `json:"verifyingSince,omitzero"`
	MonitoringSince time.Time `json:"monitoringSince,omitzero"`
	ClosedAt        time.Time `json:"closed,omitzero"`
	LastVerified    time.Time `json:"-"`
	// LastChecks are the last verification round's results, so that only
	// changes go on the timeline.
	LastChecks []string `json:"lastChecks,omitempty"`
	// Verification is the result of verifying recovery, in words.
	Verification    string `json:"verification,omitempty"`
	VerifyAnnounced bool   `json:"verifyAnnounced,omitempty"`
	// Closure is the runbook's Step 8 message, stored on entering monitoring.
	Closure string `json:"closure,omitempty"`
	// Timeline is every event with its UTC time, the last MaxTimeline;
	// TimelineDropped counts the older ones dropped.
	// Acknowledged: who took the page, and when (from Slack or PagerDuty).
	AcknowledgedAt time.Time `json:"acknowledgedAt,omitzero"`
	AcknowledgedBy string    `json:"acknowledgedBy,omitempty"`
	// ActKeys are the keys of the last MaxActKeys acts applied: a
	// redelivered act changes nothing.
	ActKeys []string `json:"actKeys,omitempty"`
	// Requests are the requests sent to action receivers and not
	// answered yet (at most MaxRequests).
	Requests []Request `json:"requests,omitempty"`
	// Silence is the amtriage silence of its alerts (requested or made);
	// RolledBack the last rollback done from Slack; ClosedBy who resolved
	// it by hand. PagerDutyID and PagerDutyURL are PagerDuty's incident,
	// once one of its webhooks named it.
	Silence         *Silence      `json:"silence,omitempty"`
	RolledBack      *RollbackDone `json:"rolledBack,omitempty"`
	ClosedBy        string        `json:"closedBy,omitempty"`
	PagerDutyID     string        `json:"pagerdutyId,omitempty"`
	PagerDutyURL    string        `json:"pagerdutyUrl,omitempty"`
	Timeline        []Entry       `json:"timeline,omitempty"`
	TimelineDropped int           `json:"timelineDropped,omitempty"`
}

// whereLabels are the labels that name a workload (kube.TargetFor).
var whereLabels = []string{"namespace", "deployment", "pod", "service"}

func where(labels map[string]string) map[string]string {
	var out map[string]string
	for _, k := range whereLabels {
		if v, ok := labels[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// GroupedBy is the key alerts join the incident by: its unit, else its service.
func (inc *Incident) GroupedBy() string {
	if inc.Unit != "" {
		return inc.Unit
	}
	return inc.Service
}

// Duration is how long the incident lasted (so far, if open).
func (inc *Incident) Duration(now time.Time) time.Duration {
	if inc.Status == Resolved && !inc.ResolvedAt.IsZero() {
		return inc.ResolvedAt.Sub(inc.StartedAt)
	}
	return now.Sub(inc.StartedAt)
}

// Tombstone remembers a resolved occurrence so that redeliveries of its firing
// notification are recognised as duplicates.
type Tombstone struct {
	IncidentID string    `json:"incident,omitempty"`
	ResolvedBy string    `json:"by"`
	At         time.Time `json:"at"`
}

// newID derives a stable incident id from its service and first occurrence; it
// doubles as the PagerDuty dedup key (≤ 255 characters).
func newID(service, firstKey string) string {
	sum := sha256.Sum256([]byte(service + "\x00" + firstKey))
	return slug(service) + "-" + hex.EncodeToString(sum[:6])
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 48 {
			break
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		return "incident"
	}
	return out
}

// title follows the runbook's ticket: "INCIDENT: [Service] - [Brief description]",
// with the detection time in UTC.
func title(service string, a *Alert, started time.Time) string {
	brief := strings.TrimSpace(a.Annotations["summary"])
	if brief == "" {
		brief = a.Name
	}
	if brief == "" {
		brief = "alert firing"
	}
	if r := []rune(brief); len(r) > 200 {
		brief = string(r[:199]) + "…"
	}
	return "INCIDENT: " + service + " - " + brief + sinceUTC(started)
}

func sinceUTC(t time.Time) string { return " since " + t.UTC().Format("15:04") + " UTC" }
