package status

import (
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/view"
)

var t0 = time.Date(2025, 5, 14, 14, 30, 0, 0, time.UTC)

func TestPublic(t *testing.T) {
	at := func(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }
	cause := &diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment}
	tests := []struct {
		name string
		inc  view.Incident
		now  time.Time
		want Entry
	}{
		{
			name: "sev 1 open, no diagnosis: investigating, next update 2 min after the last",
			inc:  view.Incident{Service: "api", Severity: 1, PeakSeverity: 1, State: incident.StateOpen, Started: t0, LastEvaluated: at(5)},
			now:  at(6),
			want: Entry{Service: "api", Level: 1, Title: "INCIDENT: api major outage", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[1], Started: t0, Duration: 6 * time.Minute,
				LastUpdated: at(5), NextUpdate: at(7)},
		},
		{
			name: "sev 2 open, the runbook's words; next update rolls past now when the last is old",
			inc:  view.Incident{Service: "api", Severity: 2, PeakSeverity: 2, State: incident.StateOpen, Started: t0},
			now:  at(12),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[2], Started: t0, Duration: 12 * time.Minute,
				LastUpdated: t0, NextUpdate: at(15)},
		},
		{
			name: "sev 2 next update exactly at now moves to the next tick",
			inc:  view.Incident{Service: "api", Severity: 2, State: incident.StateOpen, Started: t0},
			now:  at(5),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[2], Started: t0, Duration: 5 * time.Minute,
				LastUpdated: t0, NextUpdate: at(10)},
		},
		{
			name: "sev 3 open: no next update (post-incident update only)",
			inc:  view.Incident{Service: "web", Severity: 3, PeakSeverity: 3, State: incident.StateOpen, Started: t0, AcknowledgedAt: at(2)},
			now:  at(3.5),
			want: Entry{Service: "web", Level: 3, Title: "INCIDENT: web degraded performance", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[3], Started: t0, Duration: 210 * time.Second,
				LastUpdated: at(2)},
		},
		{
			name: "sev 4: hidden",
			inc:  view.Incident{Service: "api", Severity: 4, PeakSeverity: 4, State: incident.StateOpen, Started: t0},
			now:  at(1),
			want: Entry{},
		},
		{
			name: "sev 4 closed: hidden from history too",
			inc:  view.Incident{Service: "api", Severity: 4, PeakSeverity: 4, State: incident.StateClosed, Started: t0, Resolved: at(3), Closed: at(30)},
			now:  at(40),
			want: Entry{},
		},
		{
			name: "no valid severity: hidden",
			inc:  view.Incident{Service: "api", State: incident.StateOpen, Started: t0},
			now:  at(1),
			want: Entry{},
		},
		{
			name: "open, now sev 4 after sev 2: keeps the peak's words rather than vanishing",
			inc:  view.Incident{Service: "api", Severity: 4, PeakSeverity: 2, State: incident.StateOpen, Started: t0},
			now:  at(1),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[2], Started: t0, Duration: time.Minute,
				LastUpdated: t0, NextUpdate: at(5)},
		},
		{
			name: "open, now sev 3 after sev 1: the current severity's words and cadence",
			inc:  view.Incident{Service: "api", Severity: 3, PeakSeverity: 1, State: incident.StateOpen, Started: t0},
			now:  at(1),
			want: Entry{Service: "api", Level: 3, Title: "INCIDENT: api degraded performance", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[3], Started: t0, Duration: time.Minute, LastUpdated: t0},
		},
		{
			name: "open with a cause named: identified",
			inc:  view.Incident{Service: "api", Severity: 1, State: incident.StateOpen, Started: t0, Diagnosis: cause},
			now:  at(1),
			want: Entry{Service: "api", Level: 1, Title: "INCIDENT: api major outage", Phase: Identified,
				Message: messages[Identified], Impact: impacts[1], Started: t0, Duration: time.Minute,
				LastUpdated: t0, NextUpdate: at(2)},
		},
		{
			name: "open, the application fails with nothing found in Kubernetes: still investigating",
			inc: view.Incident{Service: "api", Severity: 2, State: incident.StateOpen, Started: t0,
				Diagnosis: &diagnosis.Diagnosis{Category: diagnosis.Application}},
			now: at(1),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[2], Started: t0, Duration: time.Minute, LastUpdated: t0, NextUpdate: at(5)},
		},
		{
			name: "open, a dependency is down (infrastructure): still investigating",
			inc: view.Incident{Service: "api", Severity: 2, State: incident.StateOpen, Started: t0,
				Diagnosis: &diagnosis.Diagnosis{Category: diagnosis.Infrastructure}},
			now: at(1),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[2], Started: t0, Duration: time.Minute, LastUpdated: t0, NextUpdate: at(5)},
		},
		{
			name: "open, diagnosis says look at what changed: still investigating",
			inc: view.Incident{Service: "api", Severity: 3, State: incident.StateOpen, Started: t0,
				Diagnosis: &diagnosis.Diagnosis{Category: diagnosis.WhatChanged}},
			now: at(1),
			want: Entry{Service: "api", Level: 3, Title: "INCIDENT: api degraded performance", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[3], Started: t0, Duration: time.Minute, LastUpdated: t0},
		},
		{
			name: "open, diagnosis skipped, but rolled back: identified",
			inc: view.Incident{Service: "api", Severity: 3, State: incident.StateOpen, Started: t0,
				Diagnosis: &diagnosis.Diagnosis{Category: diagnosis.Skipped}, RolledBack: &incident.RollbackDone{At: at(1)}},
			now: at(2),
			want: Entry{Service: "api", Level: 3, Title: "INCIDENT: api degraded performance", Phase: Identified,
				Message: messages[Identified], Impact: impacts[3], Started: t0, Duration: 2 * time.Minute, LastUpdated: at(1)},
		},
		{
			name: "verifying: monitoring, duration to the resolution, no next update",
			inc: view.Incident{Service: "api", Severity: 2, PeakSeverity: 1, State: incident.StateVerifying, Started: t0,
				Resolved: at(20), LastEvaluated: at(21)},
			now: at(25),
			want: Entry{Service: "api", Level: 1, Title: "INCIDENT: api major outage", Phase: Monitoring,
				Message: verifyingMessage, Impact: pastImpacts[1], Started: t0, Duration: 20 * time.Minute, LastUpdated: at(21)},
		},
		{
			name: "monitoring: monitoring",
			inc:  view.Incident{Service: "api", Severity: 3, State: incident.StateMonitoring, Started: t0, Resolved: at(90)},
			now:  at(100),
			want: Entry{Service: "api", Level: 3, Title: "INCIDENT: api degraded performance", Phase: Monitoring,
				Message: messages[Monitoring], Impact: pastImpacts[3], Started: t0, Duration: 90 * time.Minute, LastUpdated: at(90)},
		},
		{
			name: "closed: resolved, ended when the alerts resolved, peak's words",
			inc: view.Incident{Service: "api", Severity: 3, PeakSeverity: 2, State: incident.StateClosed, Started: t0,
				Resolved: at(65), Closed: at(125), Diagnosis: cause},
			now: at(24 * 60 * 3),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Resolved,
				Message: messages[Resolved], Impact: pastImpacts[2], Started: t0, Ended: at(65), Duration: 65 * time.Minute,
				LastUpdated: at(125)},
		},
		{
			name: "closed by hand without a resolution: ended on closing",
			inc:  view.Incident{Service: "api", Severity: 1, State: incident.StateClosed, Started: t0, Closed: at(42)},
			now:  at(50),
			want: Entry{Service: "api", Level: 1, Title: "INCIDENT: api major outage", Phase: Resolved,
				Message: messages[Resolved], Impact: pastImpacts[1], Started: t0, Ended: at(42), Duration: 42 * time.Minute,
				LastUpdated: at(42)},
		},
		{
			name: "unknown state counts as open",
			inc:  view.Incident{Service: "api", Severity: 2, Started: t0},
			now:  at(1),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[2], Started: t0, Duration: time.Minute,
				LastUpdated: t0, NextUpdate: at(5)},
		},
		{
			name: "a time ahead of now does not date the update in the future",
			inc:  view.Incident{Service: "api", Severity: 1, State: incident.StateOpen, Started: t0, LastEvaluated: at(9)},
			now:  at(4),
			want: Entry{Service: "api", Level: 1, Title: "INCIDENT: api major outage", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[1], Started: t0, Duration: 4 * time.Minute,
				LastUpdated: at(4), NextUpdate: at(6)},
		},
		{
			name: "times in another zone come out in UTC",
			inc: view.Incident{Service: "api", Severity: 2, State: incident.StateOpen,
				Started: t0.In(time.FixedZone("CEST", 2*3600))},
			now: at(1).In(time.FixedZone("PDT", -7*3600)),
			want: Entry{Service: "api", Level: 2, Title: "INCIDENT: api partially degraded", Phase: Investigating,
				Message: messages[Investigating], Impact: impacts[2], Started: t0, Duration: time.Minute,
				LastUpdated: t0, NextUpdate: at(5)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Public(tt.inc, tt.now)
			if got != tt.want {
				t.Errorf("Public =\n %+v\nwant\n %+v", got, tt.want)
			}
			if got.Hidden() != (tt.want == Entry{}) {
				t.Errorf("Hidden = %v", got.Hidden())
			}
			for _, tm := range []time.Time{got.Started, got.Ended, got.LastUpdated, got.NextUpdate} {
				if !tm.IsZero() && tm.Location() != time.UTC {
					t.Errorf("time %v not in UTC", tm)
				}
			}
		})
	}
}

// Every shown level has its words: a new level without them would print
// an empty title.
func TestWordsPerLevel(t *testing.T) {
	for l := severity.Level(1); l <= 3; l++ {
		if titleWords[l] == "" || impacts[l] == "" || pastImpacts[l] == "" {
			t.Errorf("level %d has no words", l)
		}
	}
	for _, p := range []Phase{Investigating, Identified, Monitoring, Resolved} {
		if messages[p] == "" {
			t.Errorf("phase %s has no message", p)
		}
	}
}

func TestWords(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "less than a minute"},
		{59 * time.Second, "less than a minute"},
		{-time.Minute, "less than a minute"},
		{time.Minute, "1 minute"},
		{5*time.Minute + 59*time.Second, "5 minutes"},
		{time.Hour, "1 hour"},
		{65 * time.Minute, "1 hour 5 minutes"},
		{2*time.Hour + time.Minute, "2 hours 1 minute"},
		{24 * time.Hour, "1 day"},
		{51*time.Hour + 40*time.Minute, "2 days 3 hours"},
	}
	for _, tt := range tests {
		if got := Words(tt.d); got != tt.want {
			t.Errorf("Words(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// The page promises the next update at the cadence amtriage sends them
// (incidents.sev1_updates, sev2_updates), not only the runbook's.
func TestPublicCadence(t *testing.T) {
	at := func(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }
	inc := view.Incident{Service: "api", Severity: 1, State: incident.StateOpen, Started: t0}
	if got := (Cadence{Sev1: 10 * time.Minute}).Public(inc, at(1)).NextUpdate; !got.Equal(at(10)) {
		t.Errorf("next update at a 10m cadence: %v, want %v", got, at(10))
	}
	if got := Public(inc, at(1)).NextUpdate; !got.Equal(at(2)) {
		t.Errorf("next update at the runbook's: %v, want %v", got, at(2))
	}
}
