package incident

import (
	"testing"
	"time"
)

func TestActs(t *testing.T) {
	b := NewBook()
	ch := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1)))
	if len(ch.Incidents) != 1 {
		t.Fatalf("opened %d incidents", len(ch.Incidents))
	}
	id := ch.Incidents[0].ID
	ack := Act{Key: "slack:T:U1:ack:1", Kind: ActAcknowledge, At: t0.Add(time.Minute), By: "<@U1>"}
	got, err := b.Act(id, ack)
	if err != nil || len(got.Events) != 1 || got.Events[0].Kind != Acknowledged {
		t.Fatalf("acknowledge: %+v, %v; want one Acknowledged event", got, err)
	}
	inc := b.Get(id)
	if inc.AcknowledgedBy != "<@U1>" || !inc.AcknowledgedAt.Equal(ack.At) {
		t.Errorf("acknowledged by %q at %v", inc.AcknowledgedBy, inc.AcknowledgedAt)
	}
	// Slack retries the same click: nothing changes.
	if again, err := b.Act(id, ack); err != nil || len(again.Events) != 0 || len(again.Incidents) != 0 {
		t.Errorf("a redelivered act changed %+v (%v)", again, err)
	}
	// A second click by someone else: noted, no second acknowledge.
	second, _ := b.Act(id, Act{Key: "slack:T:U2:ack:2", Kind: ActAcknowledge, At: t0.Add(2 * time.Minute), By: "<@U2>"})
	if len(second.Events) != 0 || b.Get(id).AcknowledgedBy != "<@U1>" {
		t.Errorf("a second acknowledge emitted %d events, acknowledged by %q", len(second.Events), b.Get(id).AcknowledgedBy)
	}
	pd, _ := b.Act(id, Act{Key: "PD1", Kind: ActPagerDuty, At: t0.Add(3 * time.Minute), By: "Ana (PagerDuty)", PagerDuty: "incident.unacknowledged"})
	if len(pd.Events) != 1 || pd.Events[0].Kind != PagerDutyChanged || b.Get(id).AcknowledgedBy != "" {
		t.Errorf("PagerDuty unacknowledged: %+v; acknowledged by %q", pd.Events, b.Get(id).AcknowledgedBy)
	}
	last := b.Get(id).Timeline[len(b.Get(id).Timeline)-1]
	if last.Kind != "pagerduty" || last.Text != "PagerDuty: incident.unacknowledged by Ana (PagerDuty)" {
		t.Errorf("timeline ends with %+v", last)
	}
	if _, err := b.Act("nope", ack); err != ErrNoIncident {
		t.Errorf("act on an unknown incident: %v", err)
	}
	for i := range MaxActKeys + 5 {
		b.Act(id, Act{Key: string(rune('a' + i)), Kind: ActPagerDuty, At: t0, By: "x", PagerDuty: "incident.reassigned"})
	}
	if n := len(b.Get(id).ActKeys); n != MaxActKeys {
		t.Errorf("%d act keys kept, want %d", n, MaxActKeys)
	}
}
