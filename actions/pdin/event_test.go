package pdin

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func user(id, name string) Ref {
	return Ref{ID: id, Type: "user_reference", Summary: name, HTMLURL: "https://acme.pagerduty.com/users/" + id}
}

var (
	alice = user("PLH1HKV", "Alice Ops")
	bob   = user("PTUXL6G", "Bob Builder")
	carol = user("P8ZQ2WX", "Carol Senior")
	svc   = Ref{ID: "PF9KMXH", Type: "service_reference", Summary: "checkout (amtriage)", HTMLURL: "https://acme.pagerduty.com/services/PF9KMXH"}
	pol   = Ref{ID: "PUS0KTE", Type: "escalation_policy_reference", Summary: "Checkout on-call", HTMLURL: "https://acme.pagerduty.com/escalation_policies/PUS0KTE"}
)

func inc(status string, assignees ...Ref) Incident {
	return Incident{
		ID: "Q2DKE9MR8SPQ6F", HTMLURL: "https://acme.pagerduty.com/incidents/Q2DKE9MR8SPQ6F", Number: 4821,
		Status: status, Title: "[Sev 2] checkout: HighErrorRate", Urgency: "high",
		IncidentKey: "checkout-3f9a1c2b4d5e", Service: svc, EscalationPolicy: pol, Assignees: assignees,
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDecodeEvent(t *testing.T) {
	noKey := inc("acknowledged", alice)
	noKey.IncidentKey = ""
	cases := []struct {
		file string
		want Event
	}{
		{"acknowledged.json", Event{ID: "01JDV0K3R7V9S5ZQ4W2M8N6B1A", Type: Acknowledged, ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:04:45.112Z"), Agent: &alice, Incident: inc("acknowledged", alice)}},
		{"unacknowledged.json", Event{ID: "01JDV0QX2C8Y1B7H3K9T5R4E6D", Type: Unacknowledged, ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:34:45.004Z"), Agent: &svc, Incident: inc("triggered", alice)}},
		{"resolved.json", Event{ID: "5ac64822-4adc-4fda-ade0-410becf0de4f", Type: Resolved, ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:51:02.870Z"), Agent: &bob, Incident: inc("resolved", bob)}},
		{"reassigned.json", Event{ID: "01JDV0T0A1B2C3D4E5F6G7H8J9", Type: Reassigned, ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:10:00Z"), Agent: &alice, Incident: inc("acknowledged", bob, carol)}},
		{"escalated.json", Event{ID: "01JDV0V5M6N7P8Q9R0S1T2U3V4", Type: Escalated, ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:20:00Z"), Agent: nil, Incident: inc("triggered", carol)}},
		{"no_incident_key.json", Event{ID: "01JDV0W9X8Y7Z6A5B4C3D2E1F0", Type: Acknowledged, ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:04:45Z"), Agent: &alice, Incident: noKey}},
		{"priority_updated.json", Event{ID: "01JDV0Y1Z2A3B4C5D6E7F8G9H0", Type: "incident.priority_updated", ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:05:00Z"), Agent: &alice, Ignorable: true}},
		{"annotated.json", Event{ID: "01JDV0Z0Y9X8W7V6U5T4S3R2Q1", Type: "incident.annotated", ResourceType: "incident",
			OccurredAt: at("2026-12-01T03:06:00Z"), Agent: &alice, Ignorable: true}},
		{"service_updated.json", Event{ID: "01BRB6ZP4M6T8ZG4X6BP63ZB9O", Type: "service.updated", ResourceType: "service",
			OccurredAt: at("2021-03-02T13:35:11.682Z"), Ignorable: true}},
		{"ping.json", Event{ID: "01JDV100PINGPINGPINGPINGPI", Type: "pagey.ping", ResourceType: "pagey",
			OccurredAt: at("2026-12-01T02:00:00Z"), Ignorable: true}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got, err := DecodeEvent(fixture(t, tc.file))
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			if got.DedupKey() != tc.want.Incident.IncidentKey {
				t.Fatalf("DedupKey %q", got.DedupKey())
			}
		})
	}
}

func TestDecodeEventRefuses(t *testing.T) {
	cases := []struct{ file, reason string }{
		{"bad_not_json.json", "invalid_json"},
		{"bad_no_event.json", "missing_event"},
		{"bad_no_id.json", "missing_id"},
		{"bad_no_type.json", "missing_type"},
		{"bad_occurred_at.json", "bad_occurred_at"},
		{"bad_no_occurred_at.json", "bad_occurred_at"},
		{"bad_data_null.json", "bad_incident"},
		{"bad_data_note.json", "bad_incident"},
		{"bad_incident_no_id.json", "bad_incident"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			ev, err := DecodeEvent(fixture(t, tc.file))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeEvent = %+v, %v; want a DecodeError", ev, err)
			}
			if de.Reason != tc.reason {
				t.Fatalf("reason %q (%v), want %q", de.Reason, err, tc.reason)
			}
		})
	}
	for _, body := range []string{"", "null", "[]", `{"event":null}`, `{"event":"x"}`, `{"event":{"id":"a","event_type":"incident.resolved","occurred_at":"2026-12-01T00:00:00Z","data":[]}}`} {
		if _, err := DecodeEvent([]byte(body)); err == nil {
			t.Errorf("DecodeEvent(%q) accepted", body)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, name := range []string{"acknowledged.json", "reassigned.json", "escalated.json", "ping.json", "bad_data_note.json", "bad_not_json.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"event":{"id":"x","event_type":"incident.acknowledged","occurred_at":"2026-12-01T00:00:00Z","data":{"type":"incident","id":"P1"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := DecodeEvent(body)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not a DecodeError with a reason", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted event without id or type: %+v", ev)
		}
		if Known(ev.Type) == ev.Ignorable {
			t.Fatalf("type %q: Known=%v but Ignorable=%v", ev.Type, Known(ev.Type), ev.Ignorable)
		}
		if !ev.Ignorable && (ev.Incident.ID == "" || ev.OccurredAt.IsZero()) {
			t.Fatalf("actionable event without incident id or time: %+v", ev)
		}
	})
}
