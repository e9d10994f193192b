package slack

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
	"github.com/amtriage/amtriage/notify"
)

// buttonsOn are the action_ids of the message's action blocks, in order
// (nil: no buttons), and the block_id of the last.
func buttonsOn(t *testing.T, m fakeslack.Message) ([]string, string) {
	t.Helper()
	var ids []string
	blockID := ""
	for _, b := range decodeBlocks(t, m.Blocks) {
		if b.Type != "actions" {
			continue
		}
		blockID = b.BlockID
		for _, e := range b.Elements {
			ids = append(ids, e.ActionID)
		}
	}
	return ids, blockID
}

var (
	openButtons     = []string{"ack", "silence_1h", "silence_4h", "resolve"}
	ackedButtons    = []string{"silence_1h", "silence_4h", "resolve"}
	silencedButtons = []string{"ack", "unsilence", "resolve"}
)

func withRollback(ev *incident.Event) {
	ev.Incident.Diagnosis = crashLoopDiagnosis("")
	ev.Incident.Diagnosis.Rollback = &diagnosis.Rollback{Namespace: "shop", Deployment: "api", From: 7, To: 6}
}

func TestMessageButtonsAndWhatRespondersDid(t *testing.T) {
	acked := func(ev *incident.Event) {
		ev.Incident.AcknowledgedAt, ev.Incident.AcknowledgedBy = time.Date(2026, 1, 12, 14, 35, 0, 0, time.UTC), "<@U0ACK>"
	}
	silenced := func(until time.Time) func(*incident.Event) {
		return func(ev *incident.Event) {
			ev.Incident.Silence = &incident.Silence{RequestKey: "k1", By: "<@U0SIL>", ID: "5f1e-silence",
				URL: "http://alertmanager:9093/#/silences/5f1e-silence", Until: until}
		}
	}
	tests := []struct {
		name     string
		rollback bool // Config.RollbackEnabled
		kind     incident.EventKind
		mod      func(*incident.Event)
		want     []string // action_ids; nil: no action block
		text     []string
		absent   []string
	}{
		{name: "open", kind: incident.Opened, want: openButtons, absent: []string{"Acknowledged by", "Silenced by", "Silence requested", "Rolled back by", "by hand"}},
		{name: "acknowledged", kind: incident.Opened, mod: acked, want: ackedButtons,
			text: []string{"✋ Acknowledged by <@U0ACK> at 14:35 UTC"}},
		{name: "silenced", kind: incident.Opened, mod: silenced(now.Add(time.Hour)), want: silencedButtons,
			text: []string{"🔇 Silenced by <@U0SIL> until 15:32 UTC — <http://alertmanager:9093/#/silences/5f1e-silence|silence 5f1e-silence>"}},
		{name: "silence expired", kind: incident.Opened, mod: silenced(now.Add(-time.Minute)), want: openButtons,
			absent: []string{"Silenced by"}},
		{name: "silence requested", kind: incident.Opened, mod: func(ev *incident.Event) {
			ev.Incident.Silence = &incident.Silence{RequestKey: "k1", By: "<@U0SIL>"}
		}, want: openButtons, text: []string{"🔇 Silence requested by <@U0SIL>…"}},
		{name: "unsilence requested", kind: incident.Opened, mod: func(ev *incident.Event) {
			silenced(now.Add(time.Hour))(ev)
			ev.Incident.Silence.Unsilencing = true
		}, want: silencedButtons, text: []string{"(unsilence requested)"}},
		{name: "rollback offered but not enabled", kind: incident.Opened, mod: withRollback, want: openButtons},
		{name: "rollback enabled and offered", rollback: true, kind: incident.Opened, mod: withRollback,
			want: append(append([]string(nil), openButtons...), "rollback")},
		{name: "rollback enabled, diagnosis without one", rollback: true, kind: incident.Opened, mod: func(ev *incident.Event) {
			ev.Incident.Diagnosis = crashLoopDiagnosis("")
		}, want: openButtons},
		{name: "rolled back", rollback: true, kind: incident.Opened, mod: func(ev *incident.Event) {
			ev.Incident.RolledBack = &incident.RollbackDone{By: "<@U0RB>", At: now, Text: "deployment shop/api set back to revision 6"}
		}, want: openButtons, text: []string{"↩️ Rolled back by <@U0RB> at 14:32 UTC: deployment shop/api set back to revision 6"}},
		{name: "the rollback done is not offered again", rollback: true, kind: incident.Opened, mod: func(ev *incident.Event) {
			withRollback(ev)
			target := *ev.Incident.Diagnosis.Rollback
			ev.Incident.RolledBack = &incident.RollbackDone{By: "<@U0RB>", At: now, Text: "rolled back", Target: &target}
		}, want: openButtons},
		{name: "pagerduty link", kind: incident.Opened, mod: func(ev *incident.Event) {
			ev.Incident.PagerDutyID, ev.Incident.PagerDutyURL = "Q1ABCDEF", "https://acme.pagerduty.com/incidents/Q1ABCDEF"
		}, want: openButtons, text: []string{"<https://acme.pagerduty.com/incidents/Q1ABCDEF|PagerDuty Q1ABCDEF>"}},
		{name: "resolved", rollback: true, kind: incident.ResolvedEvent, mod: func(ev *incident.Event) { withRollback(ev); acked(ev) },
			text: []string{"RESOLVED", "Acknowledged by <@U0ACK>"}},
		{name: "resolved by hand", kind: incident.ResolvedEvent, mod: func(ev *incident.Event) {
			ev.Incident.State, ev.Incident.ClosedBy, ev.Incident.ClosedAt = incident.StateClosed, "<@U0RES>", now
		}, text: []string{"✅ Resolved by hand by <@U0RES>"}},
		{name: "verifying keeps the buttons", kind: incident.VerifyPending, mod: func(ev *incident.Event) {
			ev.Incident.Status, ev.Incident.State = incident.Resolved, incident.StateVerifying
		}, want: openButtons},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.RollbackEnabled = tt.rollback })
			ev := event(tt.kind, 3, 0, alert("HighErrorRate", 1))
			if tt.mod != nil {
				tt.mod(ev)
			}
			e.notify(t, ev)
			msgs := e.fake.Messages("#alerts")
			if len(msgs) != 1 {
				t.Fatalf("%d messages in #alerts", len(msgs))
			}
			got, blockID := buttonsOn(t, msgs[0])
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("buttons %v, want %v", got, tt.want)
			}
			if got != nil && blockID != slackin.BlockIDPrefix+"api-0123456789ab" {
				t.Errorf("block_id %q", blockID)
			}
			text := blockText(decodeBlocks(t, msgs[0].Blocks))
			mustContain(t, "blocks", text, tt.text...)
			for _, s := range tt.absent {
				if strings.Contains(text, s) {
					t.Errorf("blocks contain %q:\n%s", s, text)
				}
			}
		})
	}
}

// The buttons posted are ones Slack sends back as amtriage's interactions:
// the fake clicks one, and the payload decodes to the incident.
func TestPostedButtonClickDecodes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RollbackEnabled = true })
	ev := event(incident.Opened, 3, 0, alert("HighErrorRate", 1))
	withRollback(ev)
	e.notify(t, ev)
	var mu sync.Mutex
	var got []slackin.Interaction
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := slackin.ReadRequest(r, e.fake.SigningSecret(), time.Now(), 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		in, err := slackin.DecodeInteraction(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, in)
		mu.Unlock()
	}))
	defer srv.Close()
	m := e.fake.Messages("#alerts")[0]
	for _, id := range []string{"ack", "rollback"} {
		sent, err := e.fake.ClickButton(context.Background(), srv.URL, fakeslack.Click{Channel: "#alerts", TS: m.TS, ActionID: id, UserID: "U0CLICK"})
		if err != nil || sent.Status != http.StatusOK {
			t.Fatalf("click %s: %v (HTTP %d %s)", id, err, sent.Status, sent.Response)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d interactions", len(got))
	}
	for i, want := range []slackin.ActionID{slackin.ActAck, slackin.ActRollback} {
		a := got[i].Actions[0]
		if a.ID != want || a.Value.Incident != "api-0123456789ab" {
			t.Errorf("click %d: %+v", i, a)
		}
	}
	if r := got[1].Actions[0].Value.Rollback; r == nil || *r != (slackin.Rollback{Namespace: "shop", Deployment: "api", From: 7, To: 6}) {
		t.Errorf("rollback value %+v", r)
	}
}

func TestDeclarationCarriesButtons(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 1, 0, alert("ServiceDown", 1)))
	created := e.fake.CreatedChannels()
	if len(created) != 1 {
		t.Fatalf("%d channels created", len(created))
	}
	id := created[0].ID
	var declared *fakeslack.Message
	for _, m := range e.fake.Messages(id) {
		if strings.HasPrefix(m.Text, "🔴 INCIDENT DECLARED") {
			declared = &m
		}
	}
	if declared == nil {
		t.Fatal("no declaration in the Sev 1 channel")
	}
	mustContain(t, "declaration fallback", declared.Text, "Service: api", "Severity: 1 (Critical)")
	mustContain(t, "declaration blocks", blockText(decodeBlocks(t, declared.Blocks)), "🔴 INCIDENT DECLARED")
	if got, _ := buttonsOn(t, *declared); !reflect.DeepEqual(got, openButtons) {
		t.Errorf("declaration buttons %v, want %v", got, openButtons)
	}
	// Acknowledged, then resolved: the declaration's buttons follow, its
	// text stays as it was posted.
	declaration := func() fakeslack.Message {
		for _, m := range e.fake.Messages(id) {
			if strings.HasPrefix(m.Text, "🔴 INCIDENT DECLARED") {
				return m
			}
		}
		t.Fatal("declaration gone")
		return fakeslack.Message{}
	}
	ack := event(incident.Acknowledged, 1, 0, alert("ServiceDown", 1))
	ack.Incident.AcknowledgedAt, ack.Incident.AcknowledgedBy = ack.At, "<@U1>"
	e.notify(t, ack)
	if m := declaration(); m.Text != declared.Text {
		t.Errorf("declaration text changed:\n%s\nwas\n%s", m.Text, declared.Text)
	} else if got, _ := buttonsOn(t, m); !reflect.DeepEqual(got, ackedButtons) {
		t.Errorf("declaration buttons after the acknowledge %v, want %v", got, ackedButtons)
	}
	res := event(incident.ResolvedEvent, 1, 0, alert("ServiceDown", 1))
	res.Incident.Status, res.Incident.State = incident.Resolved, incident.StateMonitoring
	e.notify(t, res)
	if got, _ := buttonsOn(t, declaration()); got != nil {
		t.Errorf("declaration buttons after the resolve %v, want none", got)
	}
}

// After a move the old message is not updated any more: it keeps no buttons.
func TestMovedMessageDropsButtons(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	e.notify(t, event(incident.SeverityChanged, 2, 3, alert("HighErrorRate", 1)))
	old := e.fake.Messages("#alerts")[0]
	if got, _ := buttonsOn(t, old); got != nil {
		t.Errorf("moved message still has buttons %v", got)
	}
	if got, _ := buttonsOn(t, e.fake.Messages("#incidents")[0]); !reflect.DeepEqual(got, openButtons) {
		t.Errorf("new message buttons %v", got)
	}
}

// Acknowledged updates the message (no Acknowledge button, who and when)
// and notes it in the thread once; status updates go on after it.
func TestAcknowledgedUpdatesMessageAndThread(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	ack := event(incident.Acknowledged, 3, 0, alert("HighErrorRate", 1))
	ack.At = time.Date(2026, 1, 12, 14, 5+30, 0, 0, time.UTC)
	ack.Incident.AcknowledgedAt, ack.Incident.AcknowledgedBy = ack.At, "<@U1>"
	e.notify(t, ack)
	e.notify(t, ack) // redelivered

	m := e.fake.Messages("#alerts")[0]
	if got, _ := buttonsOn(t, m); !reflect.DeepEqual(got, ackedButtons) {
		t.Errorf("buttons after acknowledge %v, want %v", got, ackedButtons)
	}
	mustContain(t, "message", blockText(decodeBlocks(t, m.Blocks)), "✋ Acknowledged by <@U1> at 14:35 UTC")
	replies := e.fake.Replies("#alerts", m.TS)
	if len(replies) != 1 || replies[0].Text != "✋ Acknowledged by <@U1> at 14:35 UTC" {
		t.Fatalf("replies %+v, want one acknowledge note", replies)
	}

	upd := event(incident.StatusUpdate, 3, 0, alert("HighErrorRate", 1))
	upd.At = now.Add(5 * time.Minute)
	upd.Incident.AcknowledgedAt, upd.Incident.AcknowledgedBy = ack.At, "<@U1>"
	e.notify(t, upd)
	replies = e.fake.Replies("#alerts", m.TS)
	if len(replies) != 2 || !strings.Contains(replies[1].Text, "UPDATE") {
		t.Fatalf("replies %+v, want the status update after the acknowledge", replies)
	}
	if got, _ := buttonsOn(t, e.fake.Messages("#alerts")[0]); !reflect.DeepEqual(got, ackedButtons) {
		t.Errorf("buttons after the update %v", got)
	}
}

func TestActionEventsNotedInThread(t *testing.T) {
	until := now.Add(time.Hour)
	tests := []struct {
		name    string
		kind    incident.EventKind
		mod     func(*incident.Event)
		note    string
		buttons []string
	}{
		{"silenced", incident.Silenced, func(ev *incident.Event) {
			ev.Incident.Silence = &incident.Silence{RequestKey: "k1", By: "<@U2>", ID: "abc123", URL: "http://am:9093/#/silences/abc123", Until: until}
			ev.Act = &incident.EventAct{Key: "k1", By: "<@U2>", Text: "http://am:9093/#/silences/abc123"}
		}, "🔇 Silenced by <@U2> until 15:32 UTC — <http://am:9093/#/silences/abc123|silence abc123>", silencedButtons},
		{"unsilenced", incident.Unsilenced, func(ev *incident.Event) {
			ev.Act = &incident.EventAct{Key: "k2", By: "<@U3>", SilenceID: "abc123"}
		}, "🔔 Unsilenced by <@U3> (silence abc123 expired)", openButtons},
		{"rolled back", incident.RolledBack, func(ev *incident.Event) {
			ev.Incident.RolledBack = &incident.RollbackDone{By: "<@U4>", At: now, Text: "deployment shop/api rolled back from revision 7 to 6"}
			ev.Act = &incident.EventAct{Key: "k3", By: "<@U4>", Text: "deployment shop/api rolled back from revision 7 to 6"}
		}, "↩️ Rolled back by <@U4>: deployment shop/api rolled back from revision 7 to 6", openButtons},
		{"pagerduty acknowledged", incident.PagerDutyChanged, func(ev *incident.Event) {
			ev.Incident.AcknowledgedAt, ev.Incident.AcknowledgedBy = now, "Ana Diaz (pagerduty)"
			ev.Incident.PagerDutyID, ev.Incident.PagerDutyURL = "Q1ABC", "https://acme.pagerduty.com/incidents/Q1ABC"
		}, "📟 PagerDuty: incident changed — acknowledged by Ana Diaz (pagerduty) at 14:32 UTC · <https://acme.pagerduty.com/incidents/Q1ABC|PagerDuty Q1ABC>", ackedButtons},
		{"pagerduty with its event type", incident.PagerDutyChanged, func(ev *incident.Event) {
			ev.Act = &incident.EventAct{Key: "pagerduty:1", By: "Bo (pagerduty)", Text: "incident.reassigned"}
		}, "📟 PagerDuty: incident.reassigned by Bo (pagerduty) — not acknowledged", openButtons},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
			ev := event(tt.kind, 3, 0, alert("HighErrorRate", 1))
			ev.At = now.Add(time.Minute)
			tt.mod(ev)
			e.notify(t, ev)
			e.notify(t, ev) // redelivered: no second note
			m := e.fake.Messages("#alerts")[0]
			if m.Edits != 2 {
				t.Errorf("%d edits, want 2", m.Edits)
			}
			if got, _ := buttonsOn(t, m); !reflect.DeepEqual(got, tt.buttons) {
				t.Errorf("buttons %v, want %v", got, tt.buttons)
			}
			replies := e.fake.Replies("#alerts", m.TS)
			if len(replies) != 1 || replies[0].Text != tt.note {
				var texts []string
				for _, r := range replies {
					texts = append(texts, r.Text)
				}
				t.Fatalf("replies %q, want [%q]", texts, tt.note)
			}
		})
	}
}

func TestResolvedByHandNotes(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	ev := event(incident.ResolvedEvent, 3, 0)
	ev.Incident.State, ev.Incident.ClosedBy, ev.Incident.ClosedAt = incident.StateClosed, "<@U5>", started.Add(10*time.Minute)
	e.notify(t, ev)
	m := e.fake.Messages("#alerts")[0]
	if got, _ := buttonsOn(t, m); got != nil {
		t.Errorf("resolved message has buttons %v", got)
	}
	replies := e.fake.Replies("#alerts", m.TS)
	if len(replies) != 1 || replies[0].Text != "✅ Resolved by hand by <@U5> at 14:42 UTC after 10m0s" {
		t.Fatalf("replies %+v", replies)
	}
}

func refused(responseURL, text string) *incident.Event {
	ev := event(incident.ActionRefused, 3, 0, alert("HighErrorRate", 1))
	ev.Act = &incident.EventAct{Key: "slack:1700000000.000100:ack", By: "<@U6>", ResponseURL: responseURL, Text: text}
	return ev
}

// A refusal goes to the user alone, once, and changes nothing in the channel.
func TestActionRefusedAnsweredOnceEphemerally(t *testing.T) {
	e := newEnv(t, nil)
	fake := e.fake
	// The fake's URL is known once it runs, after New.
	e.n.cfg.ReplyOptions = []slackin.ReplyOption{slackin.AllowOrigin(fake.URL)}
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	before := len(fake.Calls())

	ev := refused(fake.NewResponseURL(), "already silenced by <@U2> until 15:32 UTC (silence abc): unsilence first")
	for range 3 { // and two redeliveries
		e.notify(t, ev)
	}
	replies := fake.HookReplies()
	if len(replies) != 1 {
		t.Fatalf("%d replies to the response_url, want 1", len(replies))
	}
	r := replies[0]
	if r.ResponseType != "ephemeral" || r.ReplaceOriginal == nil || *r.ReplaceOriginal {
		t.Errorf("reply %+v is not ephemeral or replaces the message", r)
	}
	if want := refusedPrefix + "already silenced by <@U2> until 15:32 UTC (silence abc): unsilence first"; r.Text != want {
		t.Errorf("reply text %q, want %q", r.Text, want)
	}
	if calls := fake.Calls()[before:]; len(calls) != 0 {
		t.Errorf("the refusal made %d Web API calls (first %s): the message and thread must stay", len(calls), calls[0].Method)
	}
	m := fake.Messages("#alerts")[0]
	if m.Edits != 0 || len(fake.Replies("#alerts", m.TS)) != 0 {
		t.Errorf("message edited %d times, %d replies", m.Edits, len(fake.Replies("#alerts", m.TS)))
	}
}

func TestActionRefusedReplyFailures(t *testing.T) {
	var status atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		fmt.Fprint(w, `{"ok":false,"error":"x"}`)
	}))
	defer flaky.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	tests := []struct {
		name      string
		status    int                                                                   // of flaky
		url       func(t *testing.T, fake *fakeslack.Server, skew *atomic.Int64) string // the response_url
		wantRetry bool
		wantErr   bool
	}{
		{"expired", 0, func(_ *testing.T, f *fakeslack.Server, skew *atomic.Int64) string {
			u := f.NewResponseURL()
			skew.Store(int64(fakeslack.ResponseURLLifetime + time.Minute))
			return u
		}, false, false},
		{"used up", 0, func(t *testing.T, f *fakeslack.Server, _ *atomic.Int64) string {
			u := f.NewResponseURL()
			for range fakeslack.ResponseURLUses {
				if err := slackin.EphemeralReply(context.Background(), nil, u, "x", slackin.AllowOrigin(f.URL)); err != nil {
					t.Fatal(err)
				}
			}
			return u
		}, false, false},
		{"not slack's", 0, func(*testing.T, *fakeslack.Server, *atomic.Int64) string { return "https://evil.example/actions/x" }, false, false},
		{"ok false", http.StatusOK, func(*testing.T, *fakeslack.Server, *atomic.Int64) string { return flaky.URL + "/h" }, false, false},
		{"bad request", http.StatusBadRequest, func(*testing.T, *fakeslack.Server, *atomic.Int64) string { return flaky.URL + "/h" }, false, false},
		{"server error", http.StatusServiceUnavailable, func(*testing.T, *fakeslack.Server, *atomic.Int64) string { return flaky.URL + "/h" }, true, true},
		{"rate limited", http.StatusTooManyRequests, func(*testing.T, *fakeslack.Server, *atomic.Int64) string { return flaky.URL + "/h" }, true, true},
		{"network", 0, func(*testing.T, *fakeslack.Server, *atomic.Int64) string { return downURL + "/h" }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			var skew atomic.Int64
			e.fake.SetClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
			e.n.cfg.ReplyOptions = []slackin.ReplyOption{slackin.AllowOrigin(e.fake.URL), slackin.AllowOrigin(flaky.URL), slackin.AllowOrigin(downURL)}
			e.n.cfg.ReplyClient = &http.Client{Timeout: 5 * time.Second}
			status.Store(int32(tt.status))
			u := tt.url(t, e.fake, &skew)
			hooks := len(e.fake.HookReplies())
			retry, err := e.n.Notify(context.Background(), refused(u, "incident is closed"))
			if retry != tt.wantRetry || (err != nil) != tt.wantErr {
				t.Fatalf("Notify: retry=%v err=%v; want retry=%v, error %v", retry, err, tt.wantRetry, tt.wantErr)
			}
			if n := len(e.fake.HookReplies()) - hooks; n != 0 {
				t.Errorf("%d replies accepted", n)
			}
			st, _ := e.stateOf(t)
			if answered := contains(st.Answered, "slack:1700000000.000100:ack"); answered == tt.wantRetry {
				t.Errorf("recorded as answered: %v; a failure to retry must not be, one dropped must", answered)
			}
		})
	}
}

func (e *env) stateOf(t *testing.T) (State, bool) {
	t.Helper()
	var st State
	ok, err := e.state.LoadReceiverState("slack", "api-0123456789ab", &st)
	if err != nil {
		t.Fatal(err)
	}
	return st, ok
}

func TestActionRefusedWithoutResponseURLIsDropped(t *testing.T) {
	e := newEnv(t, nil)
	retry, err := e.n.Notify(context.Background(), refused("", "incident is closed"))
	if retry || err != nil {
		t.Fatalf("Notify: retry=%v err=%v", retry, err)
	}
	if n := len(e.fake.Calls()); n != 0 {
		t.Errorf("%d Web API calls for a refusal no one is to hear", n)
	}
}

func TestTakes(t *testing.T) {
	e := newEnv(t, nil)
	var f notify.EventFilter = e.n
	for kind, want := range map[incident.EventKind]bool{
		incident.Opened: true, incident.StatusUpdate: true, incident.ResolvedEvent: true, incident.Closed: true,
		incident.Acknowledged: true, incident.PagerDutyChanged: true, incident.Silenced: true, incident.Unsilenced: true,
		incident.RolledBack: true, incident.ActionRefused: true,
		incident.SilenceRequested: false, incident.UnsilenceRequested: false, incident.RollbackRequested: false,
	} {
		if got := f.Takes(kind); got != want {
			t.Errorf("Takes(%s) = %v, want %v", kind, got, want)
		}
		if got := notify.Takes(e.n, kind); got != want {
			t.Errorf("notify.Takes(%s) = %v, want %v", kind, got, want)
		}
	}
}

// What responders did is shown escaped: a PagerDuty user's name, a silence's
// id and URL, a rollback's text and a refusal cannot ping or link anyone;
// Slack mentions of who acted stay mentions.
func TestResponderTextIsEscaped(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RollbackEnabled = true })
	e.n.cfg.ReplyOptions = []slackin.ReplyOption{slackin.AllowOrigin(e.fake.URL)}
	evil := "<!channel> @here <http://evil.example|click> & co"
	mk := func(kind incident.EventKind) *incident.Event {
		ev := event(kind, 3, 0, alert("HighErrorRate", 1))
		ev.At = now.Add(time.Minute)
		ev.Incident.AcknowledgedAt, ev.Incident.AcknowledgedBy = now, "Eve "+evil+" (pagerduty)"
		ev.Incident.Silence = &incident.Silence{RequestKey: "k", By: evil, ID: "id " + evil, URL: "http://evil.example|click", Until: now.Add(time.Hour)}
		ev.Incident.RolledBack = &incident.RollbackDone{By: "<@U7>", At: now, Text: "rolled back " + evil}
		ev.Incident.PagerDutyID, ev.Incident.PagerDutyURL = evil, "https://acme.pagerduty.com/incidents/<!here>"
		ev.Act = &incident.EventAct{Key: "k", By: evil, Text: evil, SilenceID: evil}
		return ev
	}
	e.notify(t, mk(incident.Opened))
	for _, k := range []incident.EventKind{incident.Acknowledged, incident.PagerDutyChanged, incident.Silenced, incident.Unsilenced, incident.RolledBack} {
		e.notify(t, mk(k))
	}
	ref := mk(incident.ActionRefused)
	ref.Act.ResponseURL = e.fake.NewResponseURL()
	e.notify(t, ref)

	var strs []string
	for _, c := range e.fake.Calls() {
		if c.Error != "" {
			t.Errorf("%s failed: %s", c.Method, c.Error)
		}
		strs = append(strs, c.Strings...)
	}
	if len(e.fake.HookReplies()) != 1 {
		t.Fatalf("%d refusal replies", len(e.fake.HookReplies()))
	}
	strs = append(strs, e.fake.HookReplies()[0].Text)
	for _, s := range strs {
		low := strings.ToLower(s)
		for _, bad := range []string{"<!", "<http://evil", "@here", "|click>"} {
			if strings.Contains(low, bad) {
				t.Errorf("sent %q containing %q", s, bad)
			}
		}
	}
	m := e.fake.Messages("#alerts")[0]
	mustContain(t, "message", blockText(decodeBlocks(t, m.Blocks)), "Rolled back by <@U7>", "Eve &lt;!channel&gt;", "&amp; co")
	if got := len(e.fake.Replies("#alerts", m.TS)); got != 5 {
		t.Errorf("%d thread notes, want 5", got)
	}
}

// A long incident (a storm, every responder line, a diagnosis, Roll back)
// stays within Slack's limits, buttons included: the fake checks them.
func TestLongIncidentWithButtonsWithinBlockLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.RollbackEnabled = true
		c.EvidenceURL = func(id string) string { return "https://amtriage.example/" + id }
	})
	alerts := make([]incident.Alert, 500)
	for i := range alerts {
		alerts[i] = alert(strings.Repeat("VeryLongAlertName", 20), i)
		alerts[i].Annotations["summary"] = strings.Repeat("summary text ", 200)
		alerts[i].Annotations["runbook_url"] = fmt.Sprintf("https://runbooks.example.com/%d", i)
	}
	ev := event(incident.Opened, 2, 0, alerts...)
	ev.Incident.Title = strings.Repeat("Huge title ", 100)
	ev.Incident.Reasons = make([]string, 40)
	for i := range ev.Incident.Reasons {
		ev.Incident.Reasons[i] = strings.Repeat("reason ", 200)
	}
	withRollback(ev)
	long := strings.Repeat("x", 1024)
	ev.Incident.AcknowledgedAt, ev.Incident.AcknowledgedBy = now, long
	ev.Incident.Silence = &incident.Silence{RequestKey: "k", By: long, ID: long, URL: "http://am/" + long, Until: now.Add(time.Hour)}
	ev.Incident.RolledBack = &incident.RollbackDone{By: long, At: now, Text: long}
	ev.Incident.PagerDutyID, ev.Incident.PagerDutyURL = long, "https://pd.example/"+long
	e.notify(t, ev)
	up := *ev
	up.Kind, up.At = incident.StatusUpdate, now.Add(2*time.Minute)
	e.notify(t, &up)

	for _, c := range e.fake.Calls() {
		if c.Error != "" {
			t.Errorf("%s refused: %s", c.Method, c.Error)
		}
	}
	msgs := e.fake.Messages("#incidents")
	if len(msgs) != 1 || msgs[0].Edits != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	bs := decodeBlocks(t, msgs[0].Blocks)
	if len(bs) > maxBlocks {
		t.Fatalf("%d blocks", len(bs))
	}
	if got, _ := buttonsOn(t, msgs[0]); !reflect.DeepEqual(got, []string{"unsilence", "resolve", "rollback"}) {
		t.Errorf("buttons %v, want those of an acknowledged, silenced incident with a rollback", got)
	}
}

// The guard keeps the buttons, the alerts and the context when the blocks
// would be over Slack's 50: the body is cut, not the end.
func TestFitBlocks(t *testing.T) {
	mk := func(n int, text string) []slackapi.Block {
		var out []slackapi.Block
		for i := range n {
			out = append(out, section(fmt.Sprintf("%s %d", text, i)))
		}
		return out
	}
	tests := []struct {
		name       string
		body, tail int
		wantBody   int
	}{
		{"within", 10, 4, 10},
		{"at the limit", 46, 4, 46},
		{"over", 60, 4, 46},
		{"no tail", 60, 0, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := mk(tt.tail, "tail")
			got := fitBlocks(mk(tt.body, "body"), tail)
			if len(got) != tt.wantBody+tt.tail {
				t.Fatalf("%d blocks, want %d", len(got), tt.wantBody+tt.tail)
			}
			for i, b := range tail {
				if got[tt.wantBody+i] != b {
					t.Errorf("tail block %d not kept at the end", i)
				}
			}
		})
	}
}
