package slack

import (
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
)

// The escalation is the runbook's message in the Sev 1 message's thread
// (in the incident's channel), once, escaped: service, duration so far,
// what has been checked, current symptoms, why stuck.
func TestEscalationMessageInTheIncidentThread(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 1, 0, alert("ServiceDown", 1)))
	id := e.fake.CreatedChannels()[0].ID
	parent := e.loadState(t).TS

	ev := event(incident.Escalated, 1, 0, alert("ServiceDown", 1))
	ev.Incident.Sev1At = started.Add(time.Minute)
	ev.At = started.Add(6 * time.Minute)
	ev.Incident.EscalatedAt = ev.At
	ev.Incident.Diagnosis = &diagnosis.Diagnosis{Category: diagnosis.WhatChanged,
		Summary: "what changed recently: nothing clear <!channel>", Evidence: []string{"3/3 pods running and ready"}}
	e.notify(t, ev)
	e.notify(t, ev) // a redelivery posts nothing more

	var replies []string
	for _, m := range e.fake.Replies(id, parent) {
		replies = append(replies, m.Text)
	}
	if len(replies) != 1 {
		t.Fatalf("thread replies: %q, want one escalation", replies)
	}
	mustContain(t, "escalation", replies[0],
		"🚨 *ESCALATION*: Sev 1 with no identified cause after 5m0s.",
		"Escalating to senior engineering team.\nPage @senior-engineer-on-call immediately.\nActivating Incident War Room.",
		"*Service:* api", "*Duration so far:* 6m0s",
		"*What has been checked:*\n• quick diagnosis: what changed recently: nothing clear &lt;!channel&gt;\n• 3/3 pods running and ready\n• reachable: true [probe]",
		"*Current symptoms:*\n• Q2: 7% of requests failing (≥ 5%) [prometheus]",
		"*Why stuck:* the quick diagnosis found no cause (what_changed)")
	if strings.Contains(replies[0], "<!channel>") {
		t.Errorf("unescaped: %q", replies[0])
	}
}
