package actions

import (
	"github.com/amtriage/amtriage/diagnosis"
	"reflect"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

func TestActionRoundTrip(t *testing.T) {
	for _, a := range []*Action{
		{Key: "slack:T1:U1:ack:1.2", Kind: Acknowledge, At: at, By: Actor{Source: "slack", ID: "U1", Name: "ana"}, Incident: "api-1", ResponseURL: "https://hooks.slack.com/actions/x"},
		{Key: "k", Kind: Silence, At: at, By: Actor{Source: "slack", ID: "U1"}, Incident: "api-1", SilenceFor: time.Hour},
		{Key: "k", Kind: Rollback, At: at, By: Actor{Source: "slack", ID: "U1"}, Incident: "api-1", Rollback: &diagnosis.Rollback{Namespace: "shop", Deployment: "api", From: 2, To: 1}},
		{Key: "PD1", Kind: PagerDuty, At: at, By: Actor{Source: "pagerduty", Name: "Ana"}, PagerDuty: &PagerDutyEvent{Type: "incident.acknowledged", IncidentID: "Q1", Assignees: []string{"Ana"}}},
	} {
		b, err := a.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", a, err)
		}
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("Decode(Encode(%+v)) = %+v, %v", a, got, err)
		}
	}
}

func TestActionRefused(t *testing.T) {
	ok := func() Action {
		return Action{Key: "k", Kind: Acknowledge, At: at, By: Actor{Source: "slack"}, Incident: "api-1"}
	}
	for _, tt := range []struct {
		name, want string
		edit       func(*Action)
	}{
		{"no key", "key", func(a *Action) { a.Key = "" }},
		{"huge key", "key", func(a *Action) { a.Key = strings.Repeat("k", MaxKeyBytes+1) }},
		{"unknown kind", "not an action", func(a *Action) { a.Kind = "delete" }},
		{"no time", "at is required", func(a *Action) { a.At = time.Time{} }},
		{"no source", "by.source", func(a *Action) { a.By.Source = "" }},
		{"no incident", "incident", func(a *Action) { a.Incident = "" }},
		{"huge name", "by.name", func(a *Action) { a.By.Name = strings.Repeat("n", MaxFieldBytes+1) }},
		{"silence of nothing", "silenceFor", func(a *Action) { a.Kind = Silence }},
		{"silence too long", "silenceFor", func(a *Action) { a.Kind, a.SilenceFor = Silence, 8*24*time.Hour }},
		{"rollback to itself", "two different revisions", func(a *Action) {
			a.Kind, a.Rollback = Rollback, &diagnosis.Rollback{Namespace: "shop", Deployment: "api", From: 1, To: 1}
		}},
		{"pagerduty without incident", "dedup key or PagerDuty id", func(a *Action) {
			a.Kind, a.Incident, a.PagerDuty = PagerDuty, "", &PagerDutyEvent{Type: "incident.resolved"}
		}},
		{"too many assignees", "assignees", func(a *Action) {
			a.Kind, a.PagerDuty = PagerDuty, &PagerDutyEvent{Type: "incident.reassigned", Assignees: make([]string, MaxAssignees+1)}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := ok()
			tt.edit(&a)
			if _, err := a.Encode(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Encode: %v, want an error naming %q", err, tt.want)
			}
		})
	}
	if _, err := Decode([]byte(`{"key":"k"`)); err == nil {
		t.Error("Decode of broken JSON: no error")
	}
}
