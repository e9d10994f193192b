package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// The escalation's log line names it and says where it goes; without an
// escalation routing key, that PagerDuty escalation is not configured.
func TestLogNotifierLogsEscalation(t *testing.T) {
	for _, tc := range []struct {
		off  map[string]string
		want string
	}{
		{nil, "trigger critical (escalation routing key, dedup key api-1/escalation)"},
		{map[string]string{"pagerduty_escalation": "not configured"}, "none (PagerDuty escalation is not configured)"},
		{map[string]string{"pagerduty": "not configured", "pagerduty_escalation": "not configured"}, "none (not configured)"},
	} {
		var buf bytes.Buffer
		n := &LogNotifier{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Off: tc.off}
		if _, err := n.Notify(context.Background(), event(incident.Escalated, 1, 1)); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Msg   string `json:"msg"`
			Route Route  `json:"route"`
		}
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Msg != "incident escalated" || got.Route.PagerDuty != tc.want ||
			got.Route.Slack != "escalation message in the incident's thread" || got.Route.Grafana != "none" {
			t.Errorf("off %v: %q %+v, want pagerduty %q", tc.off, got.Msg, got.Route, tc.want)
		}
	}
}

// Routing passes an escalation only to receivers its severity is routed to.
func TestRoutedSkipsEscalationNotRoutedHere(t *testing.T) {
	rec := &recordingNotifier{}
	r := &Routed{Notifier: rec, Sends: func(_ string, sev severity.Level) bool { return sev == 2 }}
	if _, err := r.Notify(context.Background(), event(incident.Escalated, 1, 1)); !errors.Is(err, ErrSkipped) {
		t.Errorf("escalation of a Sev 1 to a receiver of Sev 2 only: %v, want ErrSkipped", err)
	}
	if len(rec.got) != 0 {
		t.Errorf("delivered %v", rec.got)
	}
}

type recordingNotifier struct{ got []incident.EventKind }

func (r *recordingNotifier) Name() string { return "rec" }

func (r *recordingNotifier) Notify(_ context.Context, ev *incident.Event) (bool, error) {
	r.got = append(r.got, ev.Kind)
	return false, nil
}
