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

// The board lists what is not closed, and what closed since it asks.
func TestBoardListsClosedSince(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	h.mustPost(alertPayload("web", "firing", time.Now()), "")
	waitFor(t, "the pages", func() bool { return len(h.rec.Events()) == 2 })
	web := ""
	for _, ev := range h.rec.Events() {
		if ev.Incident.Service == "web" {
			web = ev.Incident.ID
		}
	}
	resolve := &actions.Action{Key: "k1", Kind: actions.Resolve, At: time.Now(), By: actions.Actor{Source: "slack", ID: "U1"}, Incident: web}
	if err := h.d.committer.AppendAction(context.Background(), resolve); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web closed", func() bool { v, _ := h.d.pipeline.IncidentDetail(web); return v.State == incident.StateClosed })
	services := func(since time.Time) []string {
		var out []string
		for _, v := range h.d.pipeline.Board(since) {
			if v.Alerts != nil {
				t.Errorf("the board carries %d alerts of %s", len(v.Alerts), v.ID)
			}
			out = append(out, v.Service)
		}
		return out
	}
	if got := services(time.Now().Add(-time.Hour)); strings.Join(got, ",") != "api,web" && strings.Join(got, ",") != "web,api" {
		t.Errorf("closed since an hour ago: %v, want both", got)
	}
	if got := services(time.Now().Add(time.Hour)); strings.Join(got, ",") != "api" {
		t.Errorf("closed since later: %v, want api alone", got)
	}
}

// An action's kind is its act's: the pipeline passes it on as it is.
func TestActionKindsAreActKinds(t *testing.T) {
	for k, want := range map[actions.Kind]incident.ActKind{
		actions.Acknowledge: incident.ActAcknowledge, actions.PagerDuty: incident.ActPagerDuty,
		actions.Silence: incident.ActSilence, actions.Unsilence: incident.ActUnsilence,
		actions.Resolve: incident.ActResolve, actions.Rollback: incident.ActRollback, actions.Result: incident.ActResult,
	} {
		if incident.ActKind(k) != want {
			t.Errorf("action kind %q is act kind %q", k, want)
		}
	}
}
