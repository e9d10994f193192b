package triage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// An action goes through the inbox: applied by the pipeline to its
// incident, once per key, its event delivered; one on an unknown incident
// is ignored and one that does not decode is dead-lettered, and the
// notifications behind them flow on.
func TestActionsGoThroughTheInbox(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	waitFor(t, "the page", func() bool { return len(h.rec.Events()) == 1 })
	id := h.rec.Events()[0].Incident.ID
	ctx := context.Background()
	ack := &actions.Action{Key: "slack:T1:U1:ack:1.1", Kind: actions.Acknowledge, At: time.Now(),
		By: actions.Actor{Source: "slack", ID: "U1", Name: "ana"}, Incident: id}
	for range 2 { // Slack retries: the same key twice
		if err := h.d.committer.AppendAction(ctx, ack); err != nil {
			t.Fatal(err)
		}
	}
	unknown := *ack
	unknown.Key, unknown.Incident = "slack:T1:U1:ack:2.2", "no-such-incident"
	if err := h.d.committer.AppendAction(ctx, &unknown); err != nil {
		t.Fatal(err)
	}
	if err := h.d.committer.AppendEntry(ctx, store.InboxEntry{ReceivedAt: time.Now(), Body: []byte(`{"kind":"ack"`), Kind: store.EntryAction}, nil); err != nil {
		t.Fatal(err)
	}
	h.mustPost(alertPayload("web", "firing", time.Now()), "")
	waitFor(t, "the next page", func() bool { return len(h.rec.Events()) == 3 })
	kinds := h.rec.kinds()
	if kinds[1] != incident.Acknowledged || kinds[2] != incident.Opened {
		t.Fatalf("events %v; want opened, acknowledged (once), opened", kinds)
	}
	v, ok := h.d.pipeline.IncidentDetail(id)
	if !ok {
		t.Fatal("incident gone")
	}
	found := false
	for _, e := range v.Timeline {
		found = found || (e.Kind == "acknowledged" && strings.Contains(e.Text, "<@U1>"))
	}
	if !found {
		t.Errorf("the timeline does not say who acknowledged: %+v", v.Timeline)
	}
	waitFor(t, "the undecodable action dead-lettered", func() bool { return h.d.store.DeadLetterCounts()[store.InboxQueue] == 1 })
}
