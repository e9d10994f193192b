package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// capture is an interactivity endpoint recording requests, checking each
// signature independently of the fake's own signing code.
type capture struct {
	mu   sync.Mutex
	reqs []captured
}

type captured struct {
	header  http.Header
	body    []byte
	payload map[string]any
	valid   bool
}

func (c *capture) handler(secret []byte, now time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Slack-Request-Timestamp")
		m := hmac.New(sha256.New, secret)
		_, _ = io.WriteString(m, "v0:"+ts+":"+string(body))
		want := "v0=" + hex.EncodeToString(m.Sum(nil))
		sec, err := strconv.ParseInt(ts, 10, 64)
		fresh := err == nil && now.Unix()-sec <= 300 && sec-now.Unix() <= 300
		valid := fresh && hmac.Equal([]byte(want), []byte(r.Header.Get("X-Slack-Signature")))
		var p map[string]any
		if form, err := url.ParseQuery(string(body)); err == nil {
			_ = json.Unmarshal([]byte(form.Get("payload")), &p)
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, captured{r.Header.Clone(), body, p, valid})
		c.mu.Unlock()
		if !valid {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}
}

func (c *capture) last() captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reqs[len(c.reqs)-1]
}

func TestSendInteractionSignedAsSlack(t *testing.T) {
	ctx := context.Background()
	s := New(tok)
	defer s.Close()
	now := time.Unix(1700000000, 0)
	s.SetClock(func() time.Time { return now })
	s.SetSigningSecret([]byte("app-secret"))
	var c capture
	srv := httptest.NewServer(c.handler([]byte("app-secret"), now))
	defer srv.Close()

	p := InteractionPayload{UserID: "U0JANE", UserName: "jane", MessageTS: "1700000000.000100", ActionID: "ack", Value: `{"incident":"x"}`, BlockID: "b"}
	sent, err := s.SendInteraction(ctx, srv.URL, p)
	if err != nil || sent.Status != 200 {
		t.Fatalf("SendInteraction: %v HTTP %d", err, sent.Status)
	}
	got := c.last()
	if !got.valid {
		t.Fatal("a genuine interaction does not verify")
	}
	if ct := got.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	pl := got.payload
	a := pl["actions"].([]any)[0].(map[string]any)
	user := pl["user"].(map[string]any)
	cont := pl["container"].(map[string]any)
	if pl["type"] != "block_actions" || user["id"] != "U0JANE" || user["username"] != "jane" ||
		a["action_id"] != "ack" || a["value"] != `{"incident":"x"}` || a["type"] != "button" || a["action_ts"] == "" ||
		cont["message_ts"] != "1700000000.000100" || cont["channel_id"] != "CALERTS" || pl["trigger_id"] == "" ||
		!strings.HasPrefix(pl["response_url"].(string), s.srv.URL+"/actions/"+TeamID+"/") {
		t.Errorf("payload %v", pl)
	}

	second, _ := s.SendInteraction(ctx, srv.URL, p)
	a2 := c.last().payload["actions"].([]any)[0].(map[string]any)
	if a2["action_ts"] == a["action_ts"] || c.last().payload["response_url"] == pl["response_url"] {
		t.Error("a second click has the first one's action_ts or response_url")
	}
	_ = second

	tests := []struct {
		name string
		send func() (Sent, error)
	}{
		{"wrong secret", func() (Sent, error) { return s.SendInteractionTampered(ctx, srv.URL, p, WrongSecret) }},
		{"stale", func() (Sent, error) { return s.SendInteractionTampered(ctx, srv.URL, p, StaleTimestamp) }},
		{"future", func() (Sent, error) { return s.SendInteractionTampered(ctx, srv.URL, p, FutureTimestamp) }},
		{"no signature", func() (Sent, error) { return s.SendInteractionTampered(ctx, srv.URL, p, MissingSignature) }},
		{"no timestamp", func() (Sent, error) { return s.SendInteractionTampered(ctx, srv.URL, p, MissingTimestamp) }},
		{"tampered body", func() (Sent, error) { return s.SendInteractionTampered(ctx, srv.URL, p, TamperedBody) }},
		{"replay, new timestamp", func() (Sent, error) { return s.Replay(ctx, srv.URL, sent) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.send()
			if err != nil {
				t.Fatal(err)
			}
			if c.last().valid || got.Status != http.StatusUnauthorized {
				t.Errorf("verified (HTTP %d)", got.Status)
			}
		})
	}
	if got, _ := s.SendInteractionTampered(ctx, srv.URL, p, MissingSignature); got.Header.Get("X-Slack-Signature") != "" {
		t.Error("MissingSignature sent a signature")
	}
	for name, send := range map[string]func() (Sent, error){
		"resend":       func() (Sent, error) { return s.Resend(ctx, srv.URL, sent) },
		"replay exact": func() (Sent, error) { return s.ReplayExact(ctx, srv.URL, sent) },
	} {
		got, err := send()
		if err != nil || !c.last().valid || string(c.last().body) != string(sent.Body) {
			t.Errorf("%s: %v, verified %v, same body %v", name, err, c.last().valid, string(c.last().body) == string(sent.Body))
		}
		_ = got
	}
	if n := len(s.SentInteractions()); n != 12 {
		t.Errorf("%d sent recorded, want 12", n)
	}
}

func postHook(t *testing.T, u, ct, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(u, ct, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestResponseURL(t *testing.T) {
	s := New(tok)
	defer s.Close()
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	hook := s.NewResponseURL()
	const js = "application/json"
	tests := []struct {
		name, ct, body string
		status         int
		code           string
	}{
		{"ephemeral", js, `{"response_type":"ephemeral","replace_original":false,"text":"refused"}`, 200, ""},
		{"not JSON", js, `{`, 400, "invalid_payload"},
		{"form instead of JSON", "application/x-www-form-urlencoded", `text=x`, 400, "invalid_payload"},
		{"no text", js, `{"response_type":"ephemeral"}`, 400, "no_text"},
		{"bad response_type", js, `{"response_type":"loud","text":"x"}`, 400, "invalid_payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := postHook(t, hook, tt.ct, tt.body)
			if status != tt.status || (tt.code != "" && out["error"] != tt.code) || (tt.code == "" && out["ok"] != true) {
				t.Errorf("HTTP %d %v, want %d %s", status, out, tt.status, tt.code)
			}
		})
	}
	rs := s.HookReplies()
	if len(rs) != 1 || rs[0].ResponseType != "ephemeral" || rs[0].Text != "refused" || rs[0].ReplaceOriginal == nil || *rs[0].ReplaceOriginal {
		t.Fatalf("replies %+v", rs)
	}
	for i := 1; i < ResponseURLUses; i++ {
		if status, _ := postHook(t, hook, js, `{"text":"x"}`); status != 200 {
			t.Fatalf("use %d: HTTP %d", i+1, status)
		}
	}
	if status, out := postHook(t, hook, js, `{"text":"x"}`); status != 404 || out["error"] != "used_url" {
		t.Errorf("sixth use: HTTP %d %v, want 404 used_url", status, out)
	}
	fresh := s.NewResponseURL()
	mu.Lock()
	now = now.Add(ResponseURLLifetime + time.Second)
	mu.Unlock()
	if status, out := postHook(t, fresh, js, `{"text":"x"}`); status != 404 || out["error"] != "expired_url" {
		t.Errorf("after 30 minutes: HTTP %d %v, want 404 expired_url", status, out)
	}
	if status, _ := postHook(t, s.srv.URL+"/actions/T0/1/nope", js, `{"text":"x"}`); status != 404 {
		t.Errorf("unknown hook: HTTP %d", status)
	}
	if n := len(s.Calls()); n != 0 {
		t.Errorf("response_url posts recorded as %d Web API calls", n)
	}
}

func TestActionBlockLimits(t *testing.T) {
	s := New(tok)
	defer s.Close()
	btn := func(mod func(b map[string]any)) []any {
		b := map[string]any{"type": "button", "action_id": "ack", "value": "v",
			"text": map[string]any{"type": "plain_text", "text": "Acknowledge"}}
		mod(b)
		return []any{map[string]any{"type": "actions", "block_id": "a", "elements": []any{b}}}
	}
	confirm := func(title, text, yes string) map[string]any {
		pt := func(s string) map[string]any { return map[string]any{"type": "plain_text", "text": s} }
		return map[string]any{"title": pt(title), "text": pt(text), "confirm": pt(yes), "deny": pt("Cancel")}
	}
	tests := []struct {
		name   string
		blocks []any
		ok     bool
	}{
		{"button", btn(func(map[string]any) {}), true},
		{"confirm", btn(func(b map[string]any) { b["confirm"] = confirm("Sure?", "Really.", "Yes") }), true},
		{"danger", btn(func(b map[string]any) { b["style"] = "danger" }), true},
		{"value 2001", btn(func(b map[string]any) { b["value"] = strings.Repeat("v", 2001) }), false},
		{"action_id 256", btn(func(b map[string]any) { b["action_id"] = strings.Repeat("a", 256) }), false},
		{"text 76", btn(func(b map[string]any) {
			b["text"] = map[string]any{"type": "plain_text", "text": strings.Repeat("t", 76)}
		}), false},
		{"mrkdwn text", btn(func(b map[string]any) { b["text"] = map[string]any{"type": "mrkdwn", "text": "x"} }), false},
		{"bad style", btn(func(b map[string]any) { b["style"] = "green" }), false},
		{"confirm title 101", btn(func(b map[string]any) { b["confirm"] = confirm(strings.Repeat("t", 101), "x", "Yes") }), false},
		{"confirm text 301", btn(func(b map[string]any) { b["confirm"] = confirm("t", strings.Repeat("x", 301), "Yes") }), false},
		{"confirm button 31", btn(func(b map[string]any) { b["confirm"] = confirm("t", "x", strings.Repeat("y", 31)) }), false},
		{"no elements", []any{map[string]any{"type": "actions", "elements": []any{}}}, false},
		{"duplicate action_id", []any{map[string]any{"type": "actions", "elements": append(btn(func(map[string]any) {})[0].(map[string]any)["elements"].([]any),
			btn(func(map[string]any) {})[0].(map[string]any)["elements"].([]any)...)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := callJSON(t, s, "chat.postMessage", map[string]any{"channel": "CALERTS", "text": "x", "blocks": tt.blocks})
			if (got["ok"] == true) != tt.ok {
				t.Errorf("got %v, want ok %v", got, tt.ok)
			}
		})
	}
}
