package notify

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
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
		if _, err := r.Notify(context.Background(), e); err != nil && !errors.Is(err, ErrSkipped) {
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

// With State, a resolve goes wherever anything of the incident went, even
// when the peak severity itself was not routed there.
func TestRoutedResolveFollowsWhatWasSent(t *testing.T) {
	var got []string
	inner := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
		got = append(got, string(ev.Kind))
		return false, nil
	})
	state := &mapState{m: map[string][]byte{}}
	// A team channel that only gets Sev 3 and 4.
	r := &Routed{Notifier: inner, State: state, Sends: func(_ string, sev severity.Level) bool { return sev >= 3 }}
	inc := incident.Incident{ID: "i1", Service: "api", Severity: 3, PeakSeverity: 3}
	r.Notify(context.Background(), &incident.Event{Kind: incident.Opened, Incident: inc})
	inc.Severity, inc.PeakSeverity = 2, 2
	r.Notify(context.Background(), &incident.Event{Kind: incident.SeverityChanged, PreviousSeverity: 3, Incident: inc})
	r.Notify(context.Background(), &incident.Event{Kind: incident.ResolvedEvent, Incident: inc})
	if want := []string{"opened", "resolved"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	// An incident that never reached the receiver gets no resolve.
	other := incident.Incident{ID: "i2", Service: "api", Severity: 2, PeakSeverity: 2}
	if _, err := r.Notify(context.Background(), &incident.Event{Kind: incident.ResolvedEvent, Incident: other}); !errors.Is(err, ErrSkipped) {
		t.Fatalf("resolve of an unsent incident: %v, want ErrSkipped", err)
	}
}

type mapState struct{ m map[string][]byte }

func (s *mapState) LoadReceiverState(receiver, id string, v any) (bool, error) {
	raw, ok := s.m[receiver+"/"+id]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

func (s *mapState) SaveReceiverState(receiver, id string, v any) error {
	raw, err := json.Marshal(v)
	s.m[receiver+"/"+id] = raw
	return err
}

// What responders do to a page reaches it after its severity dropped out
// of the receiver's routing: the page is still open (a Sev 2 page, now Sev
// 3, acknowledged from Slack must be acknowledged in PagerDuty).
func TestRoutedActsFollowWhatWasSent(t *testing.T) {
	for _, withState := range []bool{true, false} {
		var got []string
		inner := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
			got = append(got, string(ev.Kind))
			return false, nil
		})
		r := &Routed{Notifier: inner, Sends: func(_ string, sev severity.Level) bool { return sev <= 2 }}
		if withState {
			r.State = &mapState{m: map[string][]byte{}}
		}
		inc := incident.Incident{ID: "i1", Service: "api", Severity: 2, PeakSeverity: 2}
		r.Notify(context.Background(), &incident.Event{Kind: incident.Opened, Incident: inc})
		inc.Severity = 3
		for _, k := range []incident.EventKind{incident.SeverityChanged, incident.Acknowledged, incident.PagerDutyChanged, incident.Silenced, incident.ActionRefused} {
			r.Notify(context.Background(), &incident.Event{Kind: k, PreviousSeverity: 2, Incident: inc})
		}
		if want := []string{"opened", "acknowledged", "pagerduty_changed", "silenced", "action_refused"}; !slices.Equal(got, want) {
			t.Errorf("state %v: delivered %v, want %v", withState, got, want)
		}
		never := incident.Incident{ID: "i2", Service: "api", Severity: 3, PeakSeverity: 3}
		if _, err := r.Notify(context.Background(), &incident.Event{Kind: incident.Acknowledged, Incident: never}); !errors.Is(err, ErrSkipped) {
			t.Errorf("state %v: an acknowledge of an incident never sent: %v, want ErrSkipped", withState, err)
		}
	}
}
