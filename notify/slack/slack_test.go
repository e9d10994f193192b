package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/notify/notifytest"
	"github.com/amtriage/amtriage/severity"
)

const token = "xoxb-test-0123456789-secret"

var (
	started = time.Date(2026, 1, 12, 14, 32, 0, 0, time.UTC)
	now     = started.Add(30 * time.Second)
)

type env struct {
	fake  *fakeslack.Server
	n     *Notifier
	state *notifytest.MemState
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	fake := fakeslack.New(token)
	t.Cleanup(fake.Close)
	st := &notifytest.MemState{}
	cfg := Config{
		APIURL: fake.URL, Token: token, Channel: "#alerts", IncidentsChannel: "#incidents",
		OncallUsers: []string{"U0123456", "U0654321"},
		Now:         func() time.Time { return now },
		Log:         slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, n: n, state: st}
}

func alert(name string, i int) incident.Alert {
	return incident.Alert{
		Key: fmt.Sprintf("fp%04d", i), Fingerprint: fmt.Sprintf("fp%04d", i), Name: name, Status: incident.Firing,
		StartsAt:     started,
		Labels:       map[string]string{"alertname": name, "service": "api", "instance": fmt.Sprintf("api-%d:8080", i)},
		Annotations:  map[string]string{"summary": "High error rate on api", "runbook_url": "https://runbooks.example.com/api"},
		GeneratorURL: "http://prometheus:9090/graph?g0.expr=up&g0.tab=1",
	}
}

func event(kind incident.EventKind, sev, prev severity.Level, alerts ...incident.Alert) *incident.Event {
	inc := incident.Incident{
		ID: "api-0123456789ab", Service: "api", Title: "INCIDENT: api - High error rate on api since 14:32 UTC",
		Status: incident.Firing, Severity: sev, PeakSeverity: sev, Rule: 5,
		Reasons:   []string{"Q2: 7% of requests failing (≥ 5%) [prometheus]", "reachable: true [probe]"},
		StartedAt: started, Firing: len(alerts),
	}
	if prev != 0 && prev < sev {
		inc.PeakSeverity = prev
	}
	ev := &incident.Event{Kind: kind, At: now, Incident: inc, PreviousSeverity: prev, Alerts: alerts, AlertsTotal: len(alerts)}
	if kind == incident.ResolvedEvent {
		ev.Incident.Status = incident.Resolved
		ev.Incident.ResolvedAt = started.Add(12*time.Minute + 30*time.Second)
		ev.Incident.Firing = 0
		ev.At = ev.Incident.ResolvedAt
	}
	return ev
}

func (e *env) notify(t *testing.T, ev *incident.Event) {
	t.Helper()
	retry, err := e.n.Notify(context.Background(), ev)
	if err != nil {
		t.Fatalf("Notify(%s, sev %d): retry=%v err=%v", ev.Kind, ev.Incident.Severity, retry, err)
	}
}

func (e *env) loadState(t *testing.T) State {
	t.Helper()
	var st State
	if ok, err := e.state.LoadReceiverState("slack", "api-0123456789ab", &st); !ok || err != nil {
		t.Fatalf("state: found=%v err=%v", ok, err)
	}
	return st
}

type block struct {
	Type string `json:"type"`
	Text *struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"text"`
	BlockID  string `json:"block_id"`
	Elements []struct {
		// A context element's text is a string; a button's, a text object.
		Text     flexText `json:"text"`
		ActionID string   `json:"action_id"`
		Value    string   `json:"value"`
	} `json:"elements"`
}

// flexText is a text given as a string or as a text object.
type flexText string

func (f *flexText) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexText(s)
		return nil
	}
	var o struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*f = flexText(o.Text)
	return nil
}

func decodeBlocks(t *testing.T, raw json.RawMessage) []block {
	t.Helper()
	var bs []block
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	return bs
}

func blockText(bs []block) string {
	var b strings.Builder
	for _, x := range bs {
		if x.Text != nil {
			b.WriteString(x.Text.Text + "\n")
		}
		for _, e := range x.Elements {
			b.WriteString(string(e.Text) + "\n")
		}
	}
	return b.String()
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func TestNameAndConfig(t *testing.T) {
	e := newEnv(t, nil)
	if e.n.Name() != "slack" {
		t.Fatal(e.n.Name())
	}
	if _, err := New(Config{APIURL: "http://x/api", Token: token, Channel: "#a"}, &notifytest.MemState{}); err == nil {
		t.Fatal("APIURL without trailing slash accepted")
	}
	if _, err := New(Config{Token: "", Channel: "#a"}, &notifytest.MemState{}); err == nil {
		t.Fatal("empty token accepted")
	}
}

func TestSev3OpenedPostsBlockKitMessageToTeamChannel(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1), alert("HighErrorRate", 2)))

	msgs := e.fake.Messages("#alerts")
	if len(msgs) != 1 {
		t.Fatalf("messages in #alerts = %d, want 1", len(msgs))
	}
	if n := len(e.fake.Messages("#incidents")); n != 0 {
		t.Fatalf("messages in #incidents = %d", n)
	}
	bs := decodeBlocks(t, msgs[0].Blocks)
	if bs[0].Type != "header" || !strings.HasPrefix(bs[0].Text.Text, "🟡 Sev 3 · INCIDENT: api") {
		t.Fatalf("header = %+v", bs[0])
	}
	text := blockText(bs)
	mustContain(t, "blocks", text, "Sev 3 (Minor)", "*Service:* api", "2 firing, 2 total",
		"Q2: 7% of requests failing", "<https://runbooks.example.com/api|runbook>",
		"<http://prometheus:9090/graph?g0.expr=up&amp;g0.tab=1|source: HighErrorRate>",
		"`HighErrorRate` instance=api-1:8080", "incident `api-0123456789ab`")
	mustContain(t, "fallback text", msgs[0].Text, "🟡 Sev 3")
	st := e.loadState(t)
	if st.Channel != "CALERTS" || st.TS != msgs[0].TS {
		t.Fatalf("state = %+v", st)
	}
}

// A change that stays in the same channel (Sev 4 → Sev 3, both the team
// channel's) updates the message in place and replies in its thread.
func TestSeverityChangeUpdatesInPlaceAndReplies(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 4, 0, alert("HighErrorRate", 1)))
	ts := e.fake.Messages("#alerts")[0].TS
	ch := event(incident.SeverityChanged, 3, 4, alert("HighErrorRate", 1), alert("HighLatency", 2))
	e.notify(t, ch)
	e.notify(t, ch) // redelivered: updates again, no second reply

	msgs := e.fake.Messages("#alerts")
	if len(msgs) != 1 || msgs[0].TS != ts {
		t.Fatalf("messages = %+v, want the one with ts %s", msgs, ts)
	}
	if msgs[0].Edits != 2 {
		t.Fatalf("edits = %d, want 2", msgs[0].Edits)
	}
	mustContain(t, "updated blocks", blockText(decodeBlocks(t, msgs[0].Blocks)), "🟡 Sev 3", "Sev 3 (Minor)", "2 firing, 2 total", "HighLatency")
	replies := e.fake.Replies("#alerts", ts)
	if len(replies) != 1 {
		t.Fatalf("replies = %d, want 1", len(replies))
	}
	mustContain(t, "reply", replies[0].Text, "escalated", "Sev 4 → 🟡 Sev 3")
	if n := len(e.fake.Messages("#incidents")); n != 0 {
		t.Fatalf("a change within the team channel's severities moved the message: %d in #incidents", n)
	}
}

func TestSev2GoesToIncidentsChannel(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 2, 0, alert("HighErrorRate", 1)))
	if n := len(e.fake.Messages("#incidents")); n != 1 {
		t.Fatalf("#incidents messages = %d", n)
	}
	if n := len(e.fake.Messages("#alerts")); n != 0 {
		t.Fatalf("#alerts messages = %d", n)
	}
	if len(e.fake.CreatedChannels()) != 0 {
		t.Fatal("Sev 2 created a channel")
	}
}

func TestSev1CreatesChannelInvitesDeclaresAndAnnounces(t *testing.T) {
	users := make([]string, 150)
	for i := range users {
		users[i] = fmt.Sprintf("U%07d", i)
	}
	e := newEnv(t, func(c *Config) { c.OncallUsers = users })
	ev := event(incident.Opened, 1, 0, alert("ServiceDown", 1))
	e.notify(t, ev)

	created := e.fake.CreatedChannels()
	if len(created) != 1 || created[0].Name != "incident-20260112-api" {
		t.Fatalf("created = %+v", created)
	}
	id := created[0].ID
	inv := e.fake.Invites()
	if len(inv) != 2 || len(inv[0].Users) != 100 || len(inv[1].Users) != 50 || inv[0].Channel != id {
		t.Fatalf("invites = %d batches", len(inv))
	}
	msgs := e.fake.Messages(id)
	if len(msgs) != 2 {
		t.Fatalf("messages in incident channel = %d, want declaration + incident message", len(msgs))
	}
	want := "🔴 INCIDENT DECLARED\nService: api\nSeverity: 1 (Critical)\nTime Detected: 14:32 UTC\nCurrent Status: Unknown"
	if !strings.HasPrefix(msgs[0].Text, want) {
		t.Fatalf("declaration = %q", msgs[0].Text)
	}
	mustContain(t, "declaration", msgs[0].Text, "\nNext Update: 14:34 UTC")
	mustContain(t, "incident message", blockText(decodeBlocks(t, msgs[1].Blocks)), "🔴 Sev 1 · ", "Sev 1 (Critical)")
	ann := e.fake.Messages("#incidents")
	if len(ann) != 1 {
		t.Fatalf("announcements = %d", len(ann))
	}
	mustContain(t, "announcement", ann[0].Text, "<#"+id+">", "Sev 1")

	// Redelivery creates nothing new.
	e.notify(t, ev)
	if len(e.fake.CreatedChannels()) != 1 || len(e.fake.Messages(id)) != 2 || len(e.fake.Messages("#incidents")) != 1 || len(e.fake.Invites()) != 2 {
		t.Fatal("redelivered Sev 1 opened produced new side effects")
	}
}

func TestSev1NameTakenGetsSuffix(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.AddChannel("incident-20260112-api")
	e.fake.AddChannel("incident-20260112-api-2")
	e.notify(t, event(incident.Opened, 1, 0, alert("ServiceDown", 1)))
	created := e.fake.CreatedChannels()
	if len(created) != 1 || created[0].Name != "incident-20260112-api-3" {
		t.Fatalf("created = %+v", created)
	}
	if st := e.loadState(t); st.IncidentChannelName != "incident-20260112-api-3" || st.IncidentChannel != created[0].ID {
		t.Fatalf("state = %+v", st)
	}
}

// Sev 3 → Sev 1: the channel is made and declared, the incident message
// moves there, and the old one points at it; the resolve updates the new one.
func TestEscalationToSev1MovesToItsChannel(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	orig := e.fake.Messages("#alerts")[0]
	e.notify(t, event(incident.SeverityChanged, 1, 3, alert("HighErrorRate", 1)))

	created := e.fake.CreatedChannels()
	if len(created) != 1 {
		t.Fatalf("created = %+v", created)
	}
	msgs := e.fake.Messages("#alerts")
	if len(msgs) != 1 || msgs[0].TS != orig.TS || msgs[0].Edits != 1 {
		t.Fatalf("original message not updated in place: %+v", msgs)
	}
	text := blockText(decodeBlocks(t, msgs[0].Blocks))
	mustContain(t, "updated original", text, "🔴 Sev 1", "Moved to <#"+created[0].ID+">")
	in := e.fake.Messages(created[0].ID)
	if len(in) != 2 || !strings.HasPrefix(in[0].Text, "🔴 INCIDENT DECLARED") {
		t.Fatalf("incident channel messages = %+v", in)
	}
	mustContain(t, "moved message", blockText(decodeBlocks(t, in[1].Blocks)), "🔴 Sev 1", "Sev 1 (Critical)")
	if len(e.fake.Messages("#incidents")) != 1 {
		t.Fatal("missing announcement")
	}

	// The resolution updates the message in the Sev 1 channel and replies
	// in its thread; the old thread stays quiet.
	e.notify(t, event(incident.ResolvedEvent, 1, 0, alert("HighErrorRate", 1)))
	in = e.fake.Messages(created[0].ID)
	if len(in) != 2 || in[1].Edits != 1 {
		t.Fatalf("incident channel after resolve = %+v", in)
	}
	r := e.fake.Replies(created[0].ID, in[1].TS)
	if len(r) != 1 {
		t.Fatalf("replies in the incident channel = %d", len(r))
	}
	mustContain(t, "resolve reply", r[0].Text, "Resolved", "12m30s")
	if len(e.fake.Replies("#alerts", orig.TS)) != 0 || len(e.fake.CreatedChannels()) != 1 {
		t.Fatal("resolve replied in the old thread or created a channel")
	}
}

func TestResolvedUpdatesMessageWithDuration(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	res := event(incident.ResolvedEvent, 3, 0, alert("HighErrorRate", 1))
	res.Alerts[0].Status = incident.Resolved
	e.notify(t, res)
	msgs := e.fake.Messages("#alerts")
	if len(msgs) != 1 || msgs[0].Edits != 1 {
		t.Fatalf("messages = %+v", msgs)
	}
	bs := decodeBlocks(t, msgs[0].Blocks)
	mustContain(t, "header", bs[0].Text.Text, "✅ RESOLVED")
	mustContain(t, "resolved blocks", blockText(bs), "*Resolved* at 14:44 UTC after 12m30s", "0 firing, 1 total")
	mustContain(t, "fallback", msgs[0].Text, "Resolved")
	r := e.fake.Replies("#alerts", msgs[0].TS)
	if len(r) != 1 || !strings.Contains(r[0].Text, "after 12m30s") {
		t.Fatalf("replies = %+v", r)
	}
}

func TestRedeliveredOpenedUpdatesInsteadOfPosting(t *testing.T) {
	e := newEnv(t, nil)
	ev := event(incident.Opened, 3, 0, alert("HighErrorRate", 1))
	e.notify(t, ev)
	e.notify(t, ev)
	msgs := e.fake.Messages("#alerts")
	if len(msgs) != 1 || msgs[0].Edits != 1 || len(e.fake.Updates()) != 1 {
		t.Fatalf("messages = %+v, updates = %d", msgs, len(e.fake.Updates()))
	}
	if len(e.fake.Replies("#alerts", msgs[0].TS)) != 0 {
		t.Fatal("redelivered opened posted a thread reply")
	}
}

func TestInjectionNeverReachesSlackUnescaped(t *testing.T) {
	e := newEnv(t, nil)
	evil := "<!channel> <!here> @here @channel @EVERYONE <http://evil.example|click> <@U999> & co"
	mk := func(kind incident.EventKind, sev, prev severity.Level) *incident.Event {
		a := alert("Evil<!here>", 1)
		a.Labels["instance"] = evil
		a.Labels["<!channel>"] = "x"
		a.Annotations["summary"] = evil
		a.Annotations["runbook_url"] = "<http://evil.example|click>"
		a.GeneratorURL = "http://evil.example|click"
		ev := event(kind, sev, prev, a)
		ev.Incident.Title = "INCIDENT: api - " + evil
		ev.Incident.Service = "api " + evil
		ev.Incident.Reasons = []string{evil}
		ev.Incident.ID = "api-0123456789ab"
		return ev
	}
	e.notify(t, mk(incident.Opened, 3, 0))
	e.notify(t, mk(incident.SeverityChanged, 1, 3))
	e.notify(t, mk(incident.ResolvedEvent, 1, 0))

	calls := e.fake.Calls()
	if len(calls) < 8 {
		t.Fatalf("only %d calls", len(calls))
	}
	for _, c := range calls {
		if c.Error != "" {
			t.Errorf("%s failed: %s", c.Method, c.Error)
		}
		for _, s := range c.Strings {
			low := strings.ToLower(s)
			for _, bad := range []string{"<!", "<@", "<http://evil", "@here", "@channel", "@everyone"} {
				if strings.Contains(low, bad) {
					t.Errorf("%s sent %q containing %q", c.Method, s, bad)
				}
			}
		}
	}
	text := blockText(decodeBlocks(t, e.fake.Messages("#alerts")[0].Blocks))
	mustContain(t, "escaped blocks", text, "&lt;!channel&gt;", "&amp; co")
}

func TestStormRespectsBlockKitLimits(t *testing.T) {
	e := newEnv(t, nil)
	alerts := make([]incident.Alert, 500)
	for i := range alerts {
		alerts[i] = alert(strings.Repeat("VeryLongAlertName", 20), i)
		alerts[i].Annotations["summary"] = strings.Repeat("summary text ", 200)
		alerts[i].Annotations["runbook_url"] = fmt.Sprintf("https://runbooks.example.com/%d", i)
	}
	ev := event(incident.Opened, 3, 0, alerts...)
	ev.Incident.Title = strings.Repeat("Huge title ", 100)
	ev.Incident.Reasons = make([]string, 40)
	for i := range ev.Incident.Reasons {
		ev.Incident.Reasons[i] = strings.Repeat("reason ", 200)
	}
	e.notify(t, ev)
	ev2 := event(incident.SeverityChanged, 2, 3, alerts...)
	ev2.Incident.Title = ev.Incident.Title
	ev2.Incident.Reasons = ev.Incident.Reasons
	e.notify(t, ev2)

	msgs := e.fake.Messages("#alerts")
	if len(msgs) != 1 || msgs[0].Edits != 1 {
		t.Fatalf("messages = %+v", len(msgs))
	}
	bs := decodeBlocks(t, msgs[0].Blocks)
	if len(bs) > 50 {
		t.Fatalf("%d blocks", len(bs))
	}
	total := 0
	for _, b := range bs {
		if b.Text != nil {
			n := len([]rune(b.Text.Text))
			total += n
			if (b.Type == "header" && n > 150) || n > 3000 {
				t.Fatalf("%s text of %d runes", b.Type, n)
			}
		}
	}
	if total > 12000 {
		t.Errorf("total block text %d runes: too close to msg_blocks_too_long", total)
	}
	if !strings.HasSuffix(bs[0].Text.Text, "…") {
		t.Errorf("header not visibly truncated: %q", bs[0].Text.Text)
	}
	mustContain(t, "blocks", blockText(bs), "+490 more alerts", "+32 more reasons", "500 total")
	if len([]rune(msgs[0].Text)) > 4000 {
		t.Errorf("fallback text %d runes", len([]rune(msgs[0].Text)))
	}
}

func TestRateLimitedReturnsRetryAfter(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.Fail("chat.postMessage", fakeslack.Fault{Status: http.StatusTooManyRequests, RetryAfter: 7})
	retry, err := e.n.Notify(context.Background(), event(incident.Opened, 3, 0, alert("A", 1)))
	var ra *notify.RetryAfterError
	if !retry || !errors.As(err, &ra) || ra.After != 7*time.Second {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	if ra.Method != "chat.postMessage" {
		t.Errorf("rate limit names method %q, want chat.postMessage: the outbox holds back the receiver's calls by it", ra.Method)
	}
	e.notify(t, event(incident.Opened, 3, 0, alert("A", 1)))
	if len(e.fake.Messages("#alerts")) != 1 {
		t.Fatal("not delivered after the rate limit")
	}
}

func TestInvalidAuthIsPermanentAndHidesToken(t *testing.T) {
	fake := fakeslack.New(token)
	defer fake.Close()
	bad := "xoxb-wrong-TOKEN-must-not-leak"
	n, err := New(Config{APIURL: fake.URL, Token: bad, Channel: "#alerts"}, &notifytest.MemState{})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), event(incident.Opened, 3, 0, alert("A", 1)))
	if retry || err == nil || !strings.Contains(err.Error(), "invalid_auth") {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	if strings.Contains(err.Error(), bad) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), bad) {
		t.Fatalf("token in error: %v", err)
	}
}

func TestErrorClassification(t *testing.T) {
	plainClient := func(c *Config) { c.Client = &http.Client{Timeout: 300 * time.Millisecond} }
	cases := []struct {
		name  string
		fault fakeslack.Fault
		retry bool
	}{
		{"http 500", fakeslack.Fault{Status: 500}, true},
		{"http 503", fakeslack.Fault{Status: 503}, true},
		{"internal_error", fakeslack.Fault{Error: "internal_error"}, true},
		{"ratelimited", fakeslack.Fault{Error: "ratelimited"}, true},
		{"fatal_error", fakeslack.Fault{Error: "fatal_error"}, true},
		{"channel_not_found", fakeslack.Fault{Error: "channel_not_found"}, false},
		{"invalid_blocks", fakeslack.Fault{Error: "invalid_blocks"}, false},
		{"hang", fakeslack.Fault{Hang: true}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, plainClient)
			e.fake.Fail("chat.postMessage", tc.fault)
			if tc.name == "channel_not_found" {
				e.fake.Fail("chat.postMessage", tc.fault) // the incidents channel too
			}
			retry, err := e.n.Notify(context.Background(), event(incident.Opened, 3, 0, alert("A", 1)))
			if err == nil || retry != tc.retry {
				t.Fatalf("retry=%v err=%v, want retry=%v", retry, err, tc.retry)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatalf("token in error: %v", err)
			}
		})
	}
}

// A 5xx is not retried within the attempt (the post may have landed); the
// outbox retries it, and exactly one message results.
func TestDefaultClientLeavesServerErrorsToTheOutbox(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.Fail("chat.postMessage", fakeslack.Fault{Status: 502})
	retry, err := e.n.Notify(context.Background(), event(incident.Opened, 3, 0, alert("A", 1)))
	if !retry || err == nil {
		t.Fatalf("502: retry=%v err=%v, want a retryable error", retry, err)
	}
	e.notify(t, event(incident.Opened, 3, 0, alert("A", 1)))
	if n := len(e.fake.Messages("#alerts")); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

// A team channel that does not exist sends the incident to the incidents
// channel; when neither exists the error is permanent.
func TestUnknownChannel(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Channel = "#nope" })
	e.notify(t, event(incident.Opened, 3, 0, alert("A", 1)))
	if n := len(e.fake.Messages("#incidents")); n != 1 {
		t.Fatalf("#incidents has %d messages, want 1", n)
	}
	e = newEnv(t, func(c *Config) { c.Channel, c.IncidentsChannel = "#nope", "#nada" })
	retry, err := e.n.Notify(context.Background(), event(incident.Opened, 3, 0, alert("A", 1)))
	if retry || err == nil || !strings.Contains(err.Error(), "channel_not_found") {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
}

func TestStatusUpdatesGoToTheThreadAndTheSev1Channel(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 1, 0, alert("HighErrorRate", 1)))
	st := e.loadState(t)
	upd := event(incident.StatusUpdate, 1, 0, alert("HighErrorRate", 1))
	upd.At = now.Add(2 * time.Minute)
	e.notify(t, upd)
	e.notify(t, upd) // redelivered: no second update posted
	replies := e.fake.Replies(st.Channel, st.TS)
	if len(replies) != 1 {
		t.Fatalf("thread replies = %d, want 1", len(replies))
	}
	mustContain(t, "status update", replies[0].Text, "UPDATE", "Status: open for", "Findings: Q2: 7% of requests failing", "Next update: "+now.Add(4*time.Minute).UTC().Format("15:04")+" UTC")
}

func TestChannelsPerService(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Channels = func(service string) (string, string) {
			if service == "api" {
				return "#api-team", ""
			}
			return "", ""
		}
	})
	e.fake.AddChannel("api-team")
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	if n := len(e.fake.Messages("#api-team")); n != 1 {
		t.Fatalf("#api-team messages = %d, want 1", n)
	}
	if n := len(e.fake.Messages("#alerts")); n != 0 {
		t.Fatalf("#alerts messages = %d, want 0", n)
	}
}

// A Sev 1 open for a day gets 720 status updates; what the receiver keeps
// per incident stays bounded, and a redelivery of the latest is still
// recognised.
func TestNotedStateIsBounded(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 2, 0, alert("HighErrorRate", 1)))
	var upd *incident.Event
	for i := 1; i <= 200; i++ {
		upd = event(incident.StatusUpdate, 2, 0, alert("HighErrorRate", 1))
		upd.At = now.Add(time.Duration(i) * 5 * time.Minute)
		e.notify(t, upd)
	}
	st := e.loadState(t)
	if len(st.Noted) > maxNoted {
		t.Fatalf("state remembers %d events, want at most %d", len(st.Noted), maxNoted)
	}
	before := len(e.fake.Replies(st.Channel, st.TS))
	e.notify(t, upd) // the latest, redelivered
	if after := len(e.fake.Replies(st.Channel, st.TS)); after != before {
		t.Fatalf("redelivered update posted again: %d replies, then %d", before, after)
	}
	if before != 200 {
		t.Fatalf("%d replies for 200 updates", before)
	}
}
