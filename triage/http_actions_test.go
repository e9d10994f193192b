package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	"github.com/amtriage/amtriage/rules"
)

// PagerDuty's own webhooks (v3, signed): an acknowledge by a responder in
// PagerDuty goes on the incident's timeline once (PagerDuty retries with
// the same event id); a forged, unsigned or tampered one is 401 and
// changes nothing; with no secret configured the endpoint is off.
func TestPagerDutyWebhooksGoOnTheTimeline(t *testing.T) {
	const secret = "pd-webhook-secret-1"
	cfg := testConfig(t)
	cfg.PagerDuty.WebhookSecret = rules.Secret(secret)
	h := servingHarness(t, cfg)
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	waitFor(t, "the page", func() bool { return len(h.rec.Events()) == 1 })
	id := h.rec.Events()[0].Incident.ID

	pd := fakepd.New()
	defer pd.Close()
	pd.SetWebhookSecrets(secret)
	trigger, _ := json.Marshal(map[string]any{"routing_key": strings.Repeat("r", 32), "event_action": "trigger", "dedup_key": id,
		"payload": map[string]any{"summary": "down", "source": "api", "severity": "critical"}})
	if resp, err := http.Post(pd.URL+"/v2/enqueue", "application/json", bytes.NewReader(trigger)); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger at the fake: %v %v", resp, err)
	}
	ana := fakepd.User{ID: "PANA", Name: "Ana Diaz"}
	ack, err := pd.Respond("incident.acknowledged", id, fakepd.Act{By: &ana})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	url := h.url + "/pagerduty/webhook"
	for _, bad := range []fakepd.Webhook{ack.TamperBody(), ack.WithoutSignature(), ack.SignedWith("another-secret")} {
		if code, err := fakepd.SendWebhook(ctx, url, bad); err != nil || code != http.StatusUnauthorized {
			t.Errorf("a bad webhook: %d %v, want 401", code, err)
		}
	}
	for range 2 { // PagerDuty retries a delivery with the same event
		if code, err := fakepd.SendWebhook(ctx, url, ack); err != nil || code != http.StatusAccepted {
			t.Fatalf("the signed webhook: %d %v, want 202", code, err)
		}
	}
	waitFor(t, "the PagerDuty event delivered", func() bool { return len(h.rec.Events()) == 2 })
	h.mustPost(alertPayload("web", "firing", time.Now()), "") // and the inbox flows on behind it
	waitFor(t, "the next page", func() bool { return len(h.rec.Events()) == 3 })
	v, _ := h.d.pipeline.IncidentDetail(id)
	notes := 0
	for _, e := range v.Timeline {
		if e.Kind == "pagerduty" && strings.Contains(e.Text, "incident.acknowledged by Ana Diaz") {
			notes++
		}
	}
	if notes != 1 || v.AcknowledgedBy == "" {
		t.Errorf("%d timeline entries for PagerDuty's acknowledge (want 1), acknowledged by %q: %+v", notes, v.AcknowledgedBy, v.Timeline)
	}

	off := servingHarness(t, testConfig(t))
	if code, _ := fakepd.SendWebhook(ctx, off.url+"/pagerduty/webhook", ack); code != http.StatusNotFound {
		t.Errorf("with no secret configured: %d, want 404", code)
	}
}
