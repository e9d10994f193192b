package triage

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/rules"
)

// ATTACK (held): duplicated signature headers, an unknown action id, a
// NUL in the user id are refused; a PagerDuty event for an unknown
// incident is 2xx.
func TestAttackHeldEndpointInputs(t *testing.T) {
	const secret, pdSecret = "slack-signing-secret-held", "pd-secret-held"
	cfg := testConfig(t)
	cfg.Slack.SigningSecret = rules.Secret(secret)
	cfg.PagerDuty.WebhookSecret = rules.Secret(pdSecret)
	h := servingHarness(t, cfg)
	ack, _ := slackin.EncodeValue(slackin.ActAck, slackin.Value{Incident: "api-1"})
	post := func(payload map[string]any, dupHeader bool) int {
		js, _ := json.Marshal(payload)
		body := []byte("payload=" + url.QueryEscape(string(js)))
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, _ := http.NewRequest(http.MethodPost, h.url+"/slack/interactions", bytes.NewReader(body))
		req.Header.Set(slackin.HeaderTimestamp, ts)
		req.Header.Set(slackin.HeaderSignature, slackin.Sign([]byte(secret), ts, body))
		if dupHeader {
			req.Header.Add(slackin.HeaderSignature, slackin.Sign([]byte("other"), ts, body))
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	one := []map[string]any{{"type": "button", "action_id": "ack", "value": ack, "action_ts": "1.1"}}
	if c := post(blockActions("", one), true); c != http.StatusUnauthorized {
		t.Errorf("two signatures: %d, want 401", c)
	}
	unknown := []map[string]any{{"type": "button", "action_id": "delete_everything", "value": ack, "action_ts": "1.2"}}
	if c := post(blockActions("", unknown), false); c != http.StatusBadRequest {
		t.Errorf("unknown action id: %d, want 400", c)
	}
	over := []map[string]any{{"type": "button", "action_id": "ack", "value": `{"incident":"api-1\u0000x"}`, "action_ts": "1.3"}}
	if c := post(blockActions("", over), false); c != http.StatusBadRequest {
		t.Errorf("NUL in the incident id: %d, want 400", c)
	}
	if c := pdPost(t, h, pdSecret, pdEvent("EVX", "Ana", "nobody-1")); c != http.StatusAccepted {
		t.Errorf("PagerDuty event for an unknown incident: %d, want 202", c)
	}
}
