package triage

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions/slackin"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
	"github.com/amtriage/amtriage/rules"
)

// attackSlackPost signs payload as Slack would and posts it.
func attackSlackPost(t *testing.T, h *harness, secret string, payload any) (int, time.Duration) {
	t.Helper()
	js, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("payload=" + url.QueryEscape(string(js)))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest(http.MethodPost, h.url+"/slack/interactions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(slackin.HeaderTimestamp, ts)
	req.Header.Set(slackin.HeaderSignature, slackin.Sign([]byte(secret), ts, body))
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

type countingTransport struct{ n *atomic.Int64 }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// blockActions is a block_actions payload carrying actions.
func blockActions(responseURL string, actions []map[string]any) map[string]any {
	return map[string]any{
		"type":         "block_actions",
		"team":         map[string]any{"id": fakeslack.TeamID, "domain": "x"},
		"user":         map[string]any{"id": "U0EVE", "username": "eve", "team_id": fakeslack.TeamID},
		"container":    map[string]any{"type": "message", "message_ts": "1700000000.000100", "channel_id": "CALERTS"},
		"channel":      map[string]any{"id": "CALERTS", "name": "alerts"},
		"response_url": responseURL,
		"actions":      actions,
	}
}

// ATTACK: one signed block_actions request carrying many actions. Slack
// sends exactly one action per click, yet the endpoint loops over all of
// them: each refused one (Roll back while disabled) spawns its own
// ephemeral POST to the response_url (an amplifier: N outbound requests
// per inbound one, on a URL Slack lets be used 5 times), and each accepted
// one is its own inbox commit inside the 3 s the handler has. A payload
// with more than one action should be refused (400) or only its first
// action taken, with at most one answer.
func TestAttackSlackManyActionsInOnePayload(t *testing.T) {
	const secret = "slack-signing-secret-attack"
	h, sl, _ := slackHarness(t, secret)
	var posts atomic.Int64
	h.d.api.ReplyClient = &http.Client{Timeout: 10 * time.Second, Transport: countingTransport{&posts}}

	const n = 300
	var refused, acks []map[string]any
	for i := range n {
		rb, _ := slackin.EncodeValue(slackin.ActRollback, slackin.Value{Incident: fmt.Sprintf("api-%04d", i),
			Rollback: &slackin.Rollback{Namespace: "shop", Deployment: "api", From: 2, To: 1}})
		refused = append(refused, map[string]any{"type": "button", "action_id": "rollback", "value": rb,
			"action_ts": fmt.Sprintf("1700000000.%06d", i)})
		ack, _ := slackin.EncodeValue(slackin.ActAck, slackin.Value{Incident: fmt.Sprintf("api-%04d", i)})
		acks = append(acks, map[string]any{"type": "button", "action_id": "ack", "value": ack,
			"action_ts": fmt.Sprintf("1700000001.%06d", i)})
	}
	code, took := attackSlackPost(t, h, secret, blockActions(sl.NewResponseURL(), refused))
	t.Logf("%d refused actions in one payload: HTTP %d in %s", n, code, took)
	time.Sleep(2 * time.Second) // the replies go out off the request
	if got := posts.Load(); code == http.StatusOK && got > 1 {
		t.Errorf("one signed request with %d actions made amtriage post %d ephemeral replies to one response_url (want at most 1; Slack took %d)", n, got, len(sl.HookReplies()))
	}

	code, took = attackSlackPost(t, h, secret, blockActions(sl.NewResponseURL(), acks))
	accepted := scalar(h.scrape(), "amtriage_action_requests_total", map[string]string{"source": "slack", "outcome": "accepted"})
	t.Logf("%d Acknowledge actions in one payload: HTTP %d in %s, %v stored", n, code, took, accepted)
	if code == http.StatusOK && accepted > 1 {
		t.Errorf("one signed request with %d actions stored %v inbox entries (want at most 1); took %s of Slack's 3 s", n, accepted, took)
	}
}

// pdPost signs body with secret as PagerDuty does and posts it.
func pdPost(t *testing.T, h *harness, secret string, body []byte) int {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, h.url+"/pagerduty/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-PagerDuty-Signature", "v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func pdEvent(id, agentName, incidentKey string) []byte {
	b, _ := json.Marshal(map[string]any{"event": map[string]any{
		"id": id, "event_type": "incident.acknowledged", "resource_type": "incident",
		"occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
		"agent":       map[string]any{"id": "PUSER", "type": "user_reference", "summary": agentName},
		"data": map[string]any{"id": "Q0PD", "type": "incident", "html_url": "https://x.pagerduty.com/incidents/Q0PD",
			"incident_key": incidentKey, "status": "acknowledged"},
	}})
	return b
}

// ATTACK: a verified PagerDuty event whose fields are longer than the
// inbox's limits (an agent's summary over 1 KiB, an event id over 512
// bytes, an incident_key over 1 KiB) fails actions.Validate inside
// AppendAction, and the endpoint answers it 503 "could not store; retry":
// PagerDuty retries it for ever, the same way, and disables the
// subscription that keeps failing (README: "PagerDuty disables a
// subscription that keeps failing"). A verified event that cannot be
// stored as it is should be clipped (names) or answered 2xx/4xx and
// logged, never 5xx.
func TestAttackPagerDutyOversizedFieldsAre503(t *testing.T) {
	const secret = "pd-webhook-secret-attack"
	cfg := testConfig(t)
	cfg.PagerDuty.WebhookSecret = rules.Secret(secret)
	h := servingHarness(t, cfg)
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"agent summary of 2 KiB", pdEvent("EV1", strings.Repeat("A", 2048), "api-1")},
		{"event id of 600 bytes", pdEvent(strings.Repeat("e", 600), "Ana", "api-1")},
		{"incident_key of 2 KiB", pdEvent("EV3", "Ana", strings.Repeat("k", 2048))},
	} {
		if code := pdPost(t, h, secret, tc.body); code >= 500 {
			t.Errorf("%s: HTTP %d; PagerDuty retries a 5xx and disables the subscription (want 2xx or 4xx)", tc.name, code)
		}
	}
}

// ATTACK: the action endpoints must be reachable from the internet (Slack
// and PagerDuty post to them) and are unauthenticated until the signature
// is checked, which is after the whole body is read, with a bare
// io.ReadAll: none of the intake's defences apply (intake.min_body_rate,
// the in-flight byte budget). A client trickling a body holds its
// connection and buffer until the server's 60 s ReadTimeout; thousands of
// them hold up to 256 KiB each. /webhook cuts the same client with 408
// once it is slower than min_body_rate (TestSlowClientsDoNotDenyIntake);
// the action endpoints should read through the same bodyReader.
func TestAttackActionEndpointsIgnoreMinBodyRate(t *testing.T) {
	cfg := testConfig(t)
	cfg.Intake.MinBodyRate = 1024
	cfg.Slack.SigningSecret = rules.Secret("slack-signing-secret-attack")
	cfg.PagerDuty.WebhookSecret = rules.Secret("pd-webhook-secret-attack")
	h := servingHarness(t, cfg, func(o *Options) { o.BodyGrace = 500 * time.Millisecond })
	for _, path := range []string{"/webhook", "/slack/interactions", "/pagerduty/webhook"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=00\r\nX-PagerDuty-Signature: v1=00\r\nContent-Length: %d\r\n\r\np", path, 200000)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s: a client trickling its body is still held after %s (min_body_rate 1024 B/s, grace 0.5 s): %v",
				path, time.Since(start).Round(time.Second), err)
			continue
		}
		resp.Body.Close()
		t.Logf("%s: the slow client was answered %d after %s", path, resp.StatusCode, time.Since(start).Round(time.Millisecond))
	}
}
