package notify

import (
	"context"
	"testing"

	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/incident"
)

func TestRoutedFiltersBySeverityAndService(t *testing.T) {
	var got []string
	inner := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
		got = append(got, ev.Incident.Service+"/"+string(ev.Kind))
		return false, nil
	})
	// Pages Sev 1 and 2, except "quiet" which pages only Sev 1.
	r := &Routed{Notifier: inner, Sends: func(svc string, sev severity.Level) bool {
		if svc == "quiet" {
			return sev == 1
		}
		return sev == 1 || sev == 2
	}}
	ev := func(svc string, kind incident.EventKind, sev, prev, peak severity.Level) *incident.Event {
		return &incident.Event{Kind: kind, PreviousSeverity: prev, Incident: incident.Incident{Service: svc, Severity: sev, PeakSeverity: peak}}
	}
	for _, e := range []*incident.Event{
		ev("api", incident.Opened, 3, 0, 3),            // not routed
		ev("api", incident.SeverityChanged, 2, 3, 2),   // first routed: arrives as opened
		ev("api", incident.SeverityChanged, 1, 2, 1),   // escalation stays an escalation
		ev("api", incident.StatusUpdate, 1, 0, 1),      // routed
		ev("api", incident.ResolvedEvent, 3, 0, 1),     // peak was routed
		ev("quiet", incident.Opened, 2, 0, 2),          // not routed for this service
		ev("quiet", incident.ResolvedEvent, 2, 0, 2),   // never sent, so no resolve
		ev("other", incident.SeverityChanged, 3, 2, 2), // a drop out of routing: not sent
	} {
		if _, err := r.Notify(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"api/opened", "api/severity_changed", "api/status_update", "api/resolved"}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
}
