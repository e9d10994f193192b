package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/amtriage/amtriage/view"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/incident"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
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
	// An event whose names are out of the action's limits is clipped and
	// taken, never refused for ever (PagerDuty would disable the
	// subscription): an agent named at length, an assignee with no name.
	var odd map[string]any
	if err := json.Unmarshal(ack.Body, &odd); err != nil {
		t.Fatal(err)
	}
	event := odd["event"].(map[string]any)
	event["id"] = "01ODDEVENT"
	event["agent"].(map[string]any)["summary"] = strings.Repeat("Ana ", 600)
	event["data"].(map[string]any)["assignees"] = []any{map[string]any{"id": "PNONAME", "type": "user_reference", "summary": ""}}
	body, _ := json.Marshal(odd)
	if code, err := fakepd.SendWebhook(ctx, url, pd.Sign("incident.acknowledged", "01ODDEVENT", body)); err != nil || code != http.StatusAccepted {
		t.Fatalf("an event with odd names: %d %v, want 202", code, err)
	}
	waitFor(t, "the PagerDuty events delivered", func() bool { return len(h.rec.Events()) == 3 })
	h.mustPost(alertPayload("web", "firing", time.Now()), "") // and the inbox flows on behind it
	waitFor(t, "the next page", func() bool { return len(h.rec.Events()) == 4 })
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

// A signed Acknowledge click from Slack acknowledges the incident once
// (Slack retries deliver the same action_ts); forged, stale, unsigned or
// replayed requests are 401 and change nothing; a Silence with no
// Alertmanager configured is answered to its user alone; with no signing
// secret the endpoint is off.
func TestSlackAcknowledgeGoesThroughTheInbox(t *testing.T) {
	const secret = "slack-signing-secret-1"
	h, sl, _ := slackHarness(t, secret)
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	waitFor(t, "the page", func() bool { return len(h.rec.Events()) == 1 })
	id := h.rec.Events()[0].Incident.ID
	value, err := slackin.EncodeValue(slackin.ActAck, slackin.Value{Incident: id})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	url := h.url + "/slack/interactions"
	click := fakeslack.InteractionPayload{UserID: "U0ANA", UserName: "ana", MessageTS: "1700000000.000100",
		ActionID: string(slackin.ActAck), Value: value, ActionTS: "1700000100.000200", ResponseURL: sl.NewResponseURL()}
	// Refused clicks come from Eve: had one been taken, she would have
	// acknowledged first.
	eve := click
	eve.UserID, eve.UserName, eve.ActionTS = "U0EVE", "eve", "1700000050.000100"
	for _, tamper := range []fakeslack.Tamper{fakeslack.WrongSecret, fakeslack.StaleTimestamp, fakeslack.MissingSignature, fakeslack.TamperedBody} {
		if sent, err := sl.SendInteractionTampered(ctx, url, eve, tamper); err != nil || sent.Status != http.StatusUnauthorized {
			t.Errorf("tampered (%v): %d %v, want 401", tamper, sent.Status, err)
		}
	}
	sent, err := sl.SendInteraction(ctx, url, click)
	if err != nil || sent.Status != http.StatusOK {
		t.Fatalf("the signed click: %d %v", sent.Status, err)
	}
	if replayed, _ := sl.Replay(ctx, url, sent); replayed.Status != http.StatusUnauthorized {
		t.Errorf("the body replayed with a new timestamp: %d, want 401", replayed.Status)
	}
	if again, _ := sl.Resend(ctx, url, sent); again.Status != http.StatusOK { // Slack's own retry
		t.Errorf("Slack's retry: %d", again.Status)
	}
	silence := click
	silence.ActionID, silence.ActionTS = string(slackin.ActSilence1h), "1700000200.000300"
	silence.Value, _ = slackin.EncodeValue(slackin.ActSilence1h, slackin.Value{Incident: id})
	if s, err := sl.SendInteraction(ctx, url, silence); err != nil || s.Status != http.StatusOK {
		t.Fatalf("a silence click: %d %v", s.Status, err)
	}
	h.mustPost(alertPayload("web", "firing", time.Now()), "")
	waitFor(t, "the next page", func() bool { return len(h.rec.Events()) == 3 })
	acks := 0
	for _, ev := range h.rec.Events() {
		if ev.Kind == incident.Acknowledged && ev.Incident.ID == id {
			acks++
		}
	}
	if acks != 1 { // incidents deliver independently: only the count is certain
		t.Fatalf("events %v; want one acknowledged among them", h.rec.kinds())
	}
	v, _ := h.d.pipeline.IncidentDetail(id)
	if v.AcknowledgedBy != "<@U0ANA>" {
		t.Errorf("acknowledged by %q, want <@U0ANA>", v.AcknowledgedBy)
	}
	for _, e := range v.Timeline {
		if strings.Contains(e.Text, "U0EVE") || strings.Contains(e.Text, "U9EVE") {
			t.Errorf("a refused click reached the incident: %+v", e)
		}
	}
	unverified := 0.0
	for _, m := range h.scrape()["amtriage_action_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() != "accepted" && l.GetValue() != "refused" {
				unverified += m.GetCounter().GetValue()
			}
		}
	}
	if unverified != 5 { // four tampered, one replayed
		t.Errorf("%v unverified requests counted, want 5", unverified)
	}
	waitFor(t, "the silence click answered to its user", func() bool {
		for _, r := range sl.HookReplies() {
			if r.ResponseType == "ephemeral" && strings.Contains(r.Text, "no Alertmanager is configured") {
				return true
			}
		}
		return false
	})
	off := servingHarness(t, testConfig(t))
	if s, _ := sl.SendInteraction(ctx, off.url+"/slack/interactions", click); s.Status != http.StatusNotFound {
		t.Errorf("with no signing secret: %d, want 404", s.Status)
	}
}

// Buttons refused at the endpoint are answered to their user alone and
// store nothing: Roll back while it is disabled or for a user not in
// allowed_users. Resolve closes the incident by hand through the inbox:
// receivers hear it resolved, the API says who.
func TestSlackButtonsRefusedOrResolved(t *testing.T) {
	const secret = "slack-signing-secret-2"
	h, sl, cfg := slackHarness(t, secret)
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	waitFor(t, "the page", func() bool { return len(h.rec.Events()) == 1 })
	id := h.rec.Events()[0].Incident.ID
	ctx := context.Background()
	url := h.url + "/slack/interactions"
	click := func(id slackin.ActionID, v slackin.Value, ts string) fakeslack.InteractionPayload {
		value, err := slackin.EncodeValue(id, v)
		if err != nil {
			t.Fatal(err)
		}
		return fakeslack.InteractionPayload{UserID: "U0BOB", UserName: "bob", MessageTS: "1700000000.000100",
			ActionID: string(id), Value: value, ActionTS: ts, ResponseURL: sl.NewResponseURL()}
	}
	rb := slackin.Value{Incident: id, Rollback: &slackin.Rollback{Namespace: "shop", Deployment: "api", From: 2, To: 1}}
	answered := func(what, text string) {
		t.Helper()
		waitFor(t, what, func() bool {
			for _, r := range sl.HookReplies() {
				if r.ResponseType == "ephemeral" && strings.Contains(r.Text, text) {
					return true
				}
			}
			return false
		})
	}
	if s, err := sl.SendInteraction(ctx, url, click(slackin.ActRollback, rb, "1700000100.000001")); err != nil || s.Status != http.StatusOK {
		t.Fatalf("rollback click: %d %v", s.Status, err)
	}
	answered("rollback disabled answered", "Roll back is not enabled")
	run := *cfg
	run.Actions.Rollback = rules.RollbackConfig{Enabled: true, AllowedUsers: []string{"U0ANA"}}
	h.d.api.setActions(&run)
	if s, _ := sl.SendInteraction(ctx, url, click(slackin.ActRollback, rb, "1700000100.000002")); s.Status != http.StatusOK {
		t.Fatalf("rollback click: %d", s.Status)
	}
	answered("a user not allowed answered", "not allowed to roll back")
	// Configured, but the receivers that would carry them out are not
	// running (no Kubernetes client, say): refused, not left hanging.
	run.Actions.Rollback.AllowedUsers = append(run.Actions.Rollback.AllowedUsers, "U0BOB")
	run.Alertmanager.URL = "http://alertmanager:9093"
	h.d.api.setActions(&run)
	if s, _ := sl.SendInteraction(ctx, url, click(slackin.ActRollback, rb, "1700000100.000004")); s.Status != http.StatusOK {
		t.Fatalf("rollback click: %d", s.Status)
	}
	answered("no rollback receiver answered", "Roll back cannot be done right now")
	if s, _ := sl.SendInteraction(ctx, url, click(slackin.ActSilence4h, slackin.Value{Incident: id}, "1700000100.000005")); s.Status != http.StatusOK {
		t.Fatalf("silence click: %d", s.Status)
	}
	answered("no silence receiver answered", "Alertmanager receiver is not running")
	// A button of an incident long pruned (or of another amtriage): told.
	if s, _ := sl.SendInteraction(ctx, url, click(slackin.ActAck, slackin.Value{Incident: "api-000000000000"}, "1700000100.000006")); s.Status != http.StatusOK {
		t.Fatalf("click on an unknown incident: %d", s.Status)
	}
	answered("a click on no incident answered", "no longer holds incident api-000000000000")
	if s, _ := sl.SendInteraction(ctx, url, click(slackin.ActResolve, slackin.Value{Incident: id}, "1700000100.000003")); s.Status != http.StatusOK {
		t.Fatalf("resolve click: %d", s.Status)
	}
	waitFor(t, "the resolve", func() bool { return len(h.rec.Events()) == 2 })
	if k := h.rec.kinds(); k[1] != incident.ResolvedEvent {
		t.Fatalf("events %v, want opened, resolved", k)
	}
	r := h.do("GET", "/api/incidents/"+id, nil, "")
	var v view.Detail
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("GET incident: %d %s", r.code, r.body)
	}
	if v.State != incident.StateClosed || v.ClosedBy != "<@U0BOB>" {
		t.Errorf("state %s closed by %q, want closed by <@U0BOB>", v.State, v.ClosedBy)
	}
	for _, e := range v.Timeline {
		if e.Kind == "rollback" || e.Kind == "refused" {
			t.Errorf("a click refused at the door reached the incident: %+v", e)
		}
	}
	metrics := h.scrape()["amtriage_action_requests_total"]
	refused := 0.0
	for _, m := range metrics.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() == "refused" {
				refused += m.GetCounter().GetValue()
			}
		}
	}
	if refused != 4 {
		t.Errorf("%v refusals counted, want 4", refused)
	}
}

// slackHarness is a serving daemon with a Slack app: the fake Slack signs
// clicks with secret, and the daemon's answers to users reach the fake.
func slackHarness(t *testing.T, secret string) (*harness, *fakeslack.Server, *rules.Config) {
	t.Helper()
	sl := fakeslack.New("xoxb-test")
	t.Cleanup(sl.Close)
	sl.SetSigningSecret([]byte(secret))
	cfg := testConfig(t)
	cfg.Slack.SigningSecret = rules.Secret(secret)
	h := servingHarness(t, cfg)
	h.d.api.replyOpts = []slackin.ReplyOption{slackin.AllowOrigin(sl.URL)}
	return h, sl, cfg
}

// With slack.allowed_teams, a click by a user of another workspace (a
// Slack Connect channel shows the buttons to its members too) is refused
// and does nothing; the workspace's own users are taken.
func TestSlackClicksFromOtherWorkspacesRefused(t *testing.T) {
	h, sl, cfg := slackHarness(t, "slack-signing-secret-3")
	run := *cfg
	run.Slack.AllowedTeams = []string{fakeslack.TeamID}
	h.d.api.setActions(&run)
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	waitFor(t, "the page", func() bool { return len(h.rec.Events()) == 1 })
	id := h.rec.Events()[0].Incident.ID
	value, _ := slackin.EncodeValue(slackin.ActAck, slackin.Value{Incident: id})
	url := h.url + "/slack/interactions"
	ctx := context.Background()
	outsider := fakeslack.InteractionPayload{UserID: "U0OUT", UserTeamID: "T0OTHERORG", MessageTS: "1700000000.000100",
		ActionID: string(slackin.ActAck), Value: value, ActionTS: "1700000300.000001", ResponseURL: sl.NewResponseURL()}
	if s, err := sl.SendInteraction(ctx, url, outsider); err != nil || s.Status != http.StatusOK {
		t.Fatalf("the outsider's click: %d %v", s.Status, err)
	}
	waitFor(t, "the outsider answered", func() bool {
		for _, r := range sl.HookReplies() {
			if strings.Contains(r.Text, "its own Slack workspace only") {
				return true
			}
		}
		return false
	})
	insider := outsider
	insider.UserID, insider.UserTeamID, insider.ActionTS, insider.ResponseURL = "U0ANA", "", "1700000300.000002", sl.NewResponseURL()
	if s, err := sl.SendInteraction(ctx, url, insider); err != nil || s.Status != http.StatusOK {
		t.Fatalf("the insider's click: %d %v", s.Status, err)
	}
	waitFor(t, "the acknowledge", func() bool { return len(h.rec.Events()) == 2 })
	if v, _ := h.d.pipeline.IncidentDetail(id); v.AcknowledgedBy != "<@U0ANA>" {
		t.Errorf("acknowledged by %q, want <@U0ANA> (the outsider's click did nothing)", v.AcknowledgedBy)
	}
}
