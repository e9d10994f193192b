package slack

import (
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
)

// TestLifecycleNotes: the thread notes of the lifecycle after the page.
func TestLifecycleNotes(t *testing.T) {
	at := time.Date(2026, 3, 1, 14, 5, 0, 0, time.UTC)
	inc := incident.Incident{ID: "api-1", Service: "api", Severity: 1, Status: incident.Resolved, Recurrences: 2,
		StartedAt: at.Add(-time.Hour), MonitoringSince: at.Add(-time.Hour), Verification: "alerts resolved, recovery not verified: 1/3 pods ready"}
	tests := []struct {
		kind incident.EventKind
		prev string
		mod  func(*incident.Incident)
		want string
	}{
		{kind: incident.VerifyPending, want: "⏳ alerts resolved, recovery not verified: 1/3 pods ready"},
		{kind: incident.Reopened, prev: incident.StateMonitoring, want: "🔁 Reopened: firing again while monitoring (recurrence 2), 🔴 Sev 1"},
		{kind: incident.Closed, want: "🔒 Closed at 14:05 UTC: quiet since 13:05 UTC"},
		{kind: incident.ResolvedEvent, mod: func(i *incident.Incident) { i.Closure = "✅ INCIDENT RESOLVED\nRoot Cause: a <bad> rollout" },
			want: "✅ INCIDENT RESOLVED\nRoot Cause: a &lt;bad&gt; rollout"},
	}
	for _, tt := range tests {
		i := inc
		if tt.mod != nil {
			tt.mod(&i)
		}
		ev := &incident.Event{Kind: tt.kind, At: at, Incident: i, PreviousState: tt.prev}
		if got := changeNote(ev); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.kind, got, tt.want)
		}
	}
}
