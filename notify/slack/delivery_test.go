package slack

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
)

// callsOf counts the calls of method the fake received.
func callsOf(fake *fakeslack.Server, method string) int {
	n := 0
	for _, c := range fake.Calls() {
		if c.Method == method {
			n++
		}
	}
	return n
}

// The 21st Sev 1 of a service in a day still gets its channel, and finding
// the name costs a bounded number of calls, not one per earlier channel.
func TestManySev1OfAServiceInADayEachGetAChannel(t *testing.T) {
	e := newEnv(t, nil)
	const n = 25
	for i := 1; i <= n; i++ {
		ev := event(incident.Opened, 1, 0, alert("ServiceDown", i))
		ev.Incident.ID = fmt.Sprintf("api-%012d", i)
		before := callsOf(e.fake, "conversations.create")
		e.notify(t, ev)
		if calls := callsOf(e.fake, "conversations.create") - before; calls > 2 {
			t.Fatalf("declaration %d cost %d conversations.create calls, want at most 2", i, calls)
		}
	}
	created := e.fake.CreatedChannels()
	if len(created) != n {
		t.Fatalf("%d channels created for %d Sev 1 incidents", len(created), n)
	}
	if created[0].Name != "incident-20260112-api" || created[n-1].Name != fmt.Sprintf("incident-20260112-api-%d", n) {
		t.Fatalf("names: first %s, last %s", created[0].Name, created[n-1].Name)
	}
	for _, c := range created {
		if len(e.fake.Messages(c.ID)) != 2 {
			t.Fatalf("channel %s has %d messages, want declaration + incident message", c.Name, len(e.fake.Messages(c.ID)))
		}
	}
}

// Whatever keeps the Sev 1 channel from being made, the declaration is
// posted in the incidents channel, saying why, and nothing is left undelivered.
func TestSev1ChannelFailureDeclaresInIncidentsChannel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*fakeslack.Server)
		why   string
	}{
		{"missing_scope", func(f *fakeslack.Server) {
			f.Fail("conversations.create", fakeslack.Fault{Error: "missing_scope"})
		}, "missing_scope"},
		{"restricted_action", func(f *fakeslack.Server) {
			f.Fail("conversations.create", fakeslack.Fault{Error: "restricted_action"})
		}, "restricted_action"},
		{"names taken", func(f *fakeslack.Server) {
			f.AddChannel("incident-20260112-api")
			for i := 2; i <= 30; i++ {
				f.AddChannel(fmt.Sprintf("incident-20260112-api-%d", i))
			}
		}, "taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tc.setup(e.fake)
			e.notify(t, event(incident.Opened, 1, 0, alert("ServiceDown", 1)))
			if c := e.fake.CreatedChannels(); len(c) != 0 {
				t.Fatalf("created %+v", c)
			}
			msgs := e.fake.Messages("#incidents")
			if len(msgs) != 2 {
				t.Fatalf("#incidents has %d messages, want the declaration and the incident message", len(msgs))
			}
			mustContain(t, "declaration", msgs[0].Text, "🔴 INCIDENT DECLARED", "Service: api", "No incident channel", tc.why)
			mustContain(t, "incident message", blockText(decodeBlocks(t, msgs[1].Blocks)), "🔴 Sev 1")

			// The fallback sticks: later events update the same message.
			upd := event(incident.StatusUpdate, 1, 0, alert("ServiceDown", 1))
			upd.At = now.Add(2 * time.Minute)
			e.notify(t, upd)
			e.notify(t, event(incident.ResolvedEvent, 1, 0, alert("ServiceDown", 1)))
			msgs = e.fake.Messages("#incidents")
			if len(msgs) != 2 || msgs[1].Edits != 2 || len(e.fake.CreatedChannels()) != 0 {
				t.Fatalf("after update and resolve: %d messages, %d edits, %d channels", len(msgs), msgs[len(msgs)-1].Edits, len(e.fake.CreatedChannels()))
			}
		})
	}
}

// Sev 3 → Sev 2 reaches #incidents; the old message says where it went, and
// later updates and the resolve go to the new one.
func TestEscalationToSev2MovesToIncidentsChannel(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	old := e.fake.Messages("#alerts")[0]
	ch := event(incident.SeverityChanged, 2, 3, alert("HighErrorRate", 1), alert("HighLatency", 2))
	e.notify(t, ch)
	e.notify(t, ch) // redelivered: nothing new

	moved := e.fake.Messages("#incidents")
	if len(moved) != 1 {
		t.Fatalf("#incidents has %d messages, want 1", len(moved))
	}
	mustContain(t, "new message", blockText(decodeBlocks(t, moved[0].Blocks)), "🟠 Sev 2", "HighLatency")
	alerts := e.fake.Messages("#alerts")
	if len(alerts) != 1 || alerts[0].TS != old.TS || alerts[0].Edits == 0 {
		t.Fatalf("#alerts = %+v", alerts)
	}
	mustContain(t, "old message", blockText(decodeBlocks(t, alerts[0].Blocks)), "Moved to <#CINCIDENTS>")

	upd := event(incident.StatusUpdate, 2, 0, alert("HighErrorRate", 1))
	upd.At = now.Add(5 * time.Minute)
	e.notify(t, upd)
	e.notify(t, event(incident.ResolvedEvent, 2, 0, alert("HighErrorRate", 1)))
	moved = e.fake.Messages("#incidents")
	if len(moved) != 1 || moved[0].Edits != 3 {
		t.Fatalf("#incidents = %d messages, %d edits; want 1 updated by the redelivery, the update and the resolve", len(moved), moved[0].Edits)
	}
	mustContain(t, "resolved", blockText(decodeBlocks(t, moved[0].Blocks)), "RESOLVED")
	if r := e.fake.Replies("#incidents", moved[0].TS); len(r) != 2 {
		t.Fatalf("replies in #incidents = %d, want the update and the resolve", len(r))
	}
	if r := e.fake.Replies("#alerts", old.TS); len(r) != 0 {
		t.Fatalf("old thread got %d replies after the move", len(r))
	}
}

// A message deleted, a channel archived, an uneditable message: the next
// update posts a new message and the following ones update it.
func TestGoneMessageIsPostedAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(*fakeslack.Server, fakeslack.Message)
		where  string // where the new message goes
	}{
		{"message_not_found", func(f *fakeslack.Server, m fakeslack.Message) { f.DeleteMessage(m.Channel, m.TS) }, "#alerts"},
		{"is_archived", func(f *fakeslack.Server, m fakeslack.Message) { f.Archive(m.Channel) }, "#incidents"},
		{"cant_update_message", func(f *fakeslack.Server, _ fakeslack.Message) {
			f.Fail("chat.update", fakeslack.Fault{Error: "cant_update_message"})
		}, "#alerts"},
		{"channel_not_found", func(f *fakeslack.Server, _ fakeslack.Message) {
			f.Fail("chat.update", fakeslack.Fault{Error: "channel_not_found"})
		}, "#alerts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
			first := e.fake.Messages("#alerts")[0]
			tc.break_(e.fake, first)

			upd := event(incident.StatusUpdate, 3, 0, alert("HighErrorRate", 1))
			upd.At = now.Add(5 * time.Minute)
			e.notify(t, upd)
			e.notify(t, event(incident.ResolvedEvent, 3, 0, alert("HighErrorRate", 1)))

			var fresh []fakeslack.Message
			for _, m := range e.fake.Messages(tc.where) {
				if m.TS != first.TS {
					fresh = append(fresh, m)
				}
			}
			if len(fresh) != 1 || fresh[0].Edits != 1 {
				t.Fatalf("new messages in %s = %+v, want one, updated by the resolve", tc.where, fresh)
			}
			mustContain(t, "resolved", blockText(decodeBlocks(t, fresh[0].Blocks)), "RESOLVED")
		})
	}
}

// A post whose answer is lost (or a crash before its outcome was recorded)
// is looked up before it is repeated: exactly one of each message exists.
func TestLostAnswersDoNotDuplicate(t *testing.T) {
	opened3 := event(incident.Opened, 3, 0, alert("HighErrorRate", 1))
	opened1 := event(incident.Opened, 1, 0, alert("ServiceDown", 1))
	upd := event(incident.StatusUpdate, 3, 0, alert("HighErrorRate", 1))
	upd.At = now.Add(5 * time.Minute)
	for _, tc := range []struct {
		name    string
		before  []*incident.Event // delivered first, without faults
		ev      *incident.Event
		method  string
		skip    int  // calls of method answered before the lost one
		restart bool // a new Notifier on the same state (kill -9)
	}{
		{"incident message", nil, opened3, "chat.postMessage", 0, false},
		{"incident message after restart", nil, opened3, "chat.postMessage", 0, true},
		{"thread reply", []*incident.Event{opened3}, upd, "chat.postMessage", 0, false},
		{"thread reply after restart", []*incident.Event{opened3}, upd, "chat.postMessage", 0, true},
		{"declaration", nil, opened1, "chat.postMessage", 0, true},
		{"announcement", nil, opened1, "chat.postMessage", 1, true},
		{"Sev 1 incident message", nil, opened1, "chat.postMessage", 2, true},
		{"Sev 1 channel", nil, opened1, "conversations.create", 0, false},
		{"Sev 1 channel after restart", nil, opened1, "conversations.create", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			for _, ev := range tc.before {
				e.notify(t, ev)
			}
			e.fake.FailAfter(tc.method, tc.skip, fakeslack.Fault{Lost: true})
			retry, err := e.n.Notify(context.Background(), tc.ev)
			if err == nil || !retry {
				t.Fatalf("lost answer: retry=%v err=%v, want a retryable error", retry, err)
			}
			if tc.restart {
				n, err := New(e.n.cfg, e.state)
				if err != nil {
					t.Fatal(err)
				}
				e.n = n
			}
			e.notify(t, tc.ev)
			e.notify(t, tc.ev) // and a redelivery after success

			seen := map[string]int{}
			for _, m := range e.fake.AllMessages() {
				text := m.Text
				if len(text) > 40 {
					text = text[:40]
				}
				seen[m.Channel+"|"+m.ThreadTS+"|"+text]++
			}
			for k, c := range seen {
				if c > 1 {
					t.Errorf("%d copies of %q", c, k)
				}
			}
			created := e.fake.CreatedChannels()
			if tc.ev.Incident.Severity == 1 {
				if len(created) != 1 {
					t.Fatalf("created %d channels, want 1", len(created))
				}
				if len(e.fake.Invites()) != 1 || e.fake.Invites()[0].Channel != created[0].ID {
					t.Fatalf("invites = %+v, want one to %s", e.fake.Invites(), created[0].ID)
				}
				if got := len(e.fake.Messages(created[0].ID)); got != 2 {
					t.Fatalf("incident channel has %d messages, want 2", got)
				}
				if got := len(e.fake.Messages("#incidents")); got != 1 {
					t.Fatalf("#incidents has %d messages, want the announcement", got)
				}
			} else if got := len(e.fake.Messages("#alerts")); got != 1 {
				t.Fatalf("#alerts has %d messages, want 1", got)
			}
			if tc.ev.Kind == incident.StatusUpdate {
				if r := e.fake.Replies("#alerts", e.fake.Messages("#alerts")[0].TS); len(r) != 1 {
					t.Fatalf("%d thread replies, want 1", len(r))
				}
			}
		})
	}
}

func TestMetadataNamesTheIncident(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	m := e.fake.Messages("#alerts")[0]
	if m.Metadata == nil || m.Metadata.EventType != "amtriage_incident" || m.Metadata.EventPayload["incident"] != "api-0123456789ab" ||
		!strings.HasPrefix(fmt.Sprint(m.Metadata.EventPayload["key"]), "message/") {
		t.Fatalf("metadata = %+v", m.Metadata)
	}
}

// A move whose pointer update fails is finished by the retry, without a
// second message in the new channel.
func TestMovePointerIsRetried(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Client = &http.Client{Timeout: 5 * time.Second} })
	e.notify(t, event(incident.Opened, 3, 0, alert("HighErrorRate", 1)))
	e.fake.Fail("chat.update", fakeslack.Fault{Status: 500})
	ch := event(incident.SeverityChanged, 2, 3, alert("HighErrorRate", 1))
	if retry, err := e.n.Notify(context.Background(), ch); err == nil || !retry {
		t.Fatalf("pointer update failing: retry=%v err=%v", retry, err)
	}
	e.notify(t, ch)
	if n := len(e.fake.Messages("#incidents")); n != 1 {
		t.Fatalf("#incidents has %d messages, want 1", n)
	}
	old := e.fake.Messages("#alerts")[0]
	mustContain(t, "old message", blockText(decodeBlocks(t, old.Blocks)), "Moved to <#CINCIDENTS>")
	if st := e.loadState(t); st.MovedFrom != nil || st.Channel != "CINCIDENTS" {
		t.Fatalf("state = %+v", st)
	}
}

// The remembered name suffixes are kept for a few days, not forever.
func TestRememberedNamesAreDropped(t *testing.T) {
	e := newEnv(t, nil)
	e.notify(t, event(incident.Opened, 1, 0, alert("ServiceDown", 1)))
	later := event(incident.Opened, 1, 0, alert("ServiceDown", 1))
	later.Incident.ID = "api-later"
	later.Incident.StartedAt = started.Add(5 * 24 * time.Hour)
	e.n.cfg.Now = func() time.Time { return now.Add(5 * 24 * time.Hour) }
	e.notify(t, later)
	var ns namesState
	if ok, err := e.state.LoadReceiverState("slack", namesKey, &ns); !ok || err != nil {
		t.Fatalf("names: %v %v", ok, err)
	}
	if len(ns.Last) != 1 || ns.Last["incident-20260117-api"] != 1 {
		t.Fatalf("remembered = %v, want only the latest day's", ns.Last)
	}
}

// A channel creation that keeps failing in a way worth retrying (5xx, rate
// limits) falls back after a few attempts instead of leaving the Sev 1
// declaration unposted for as long as Slack keeps failing.
func TestSev1ChannelThatKeepsFailingFallsBack(t *testing.T) {
	e := newEnv(t, nil)
	for range 10 {
		e.fake.Fail("conversations.create", fakeslack.Fault{Status: http.StatusInternalServerError})
	}
	ev := event(incident.Opened, 1, 0, alert("ServiceDown", 1))
	var attempts int
	for attempts = 1; attempts <= 10; attempts++ {
		retry, err := e.n.Notify(context.Background(), ev)
		if err == nil {
			break
		}
		if !retry {
			t.Fatalf("attempt %d: %v, not retryable", attempts, err)
		}
	}
	if attempts > maxCreateFailures {
		t.Fatalf("declared after %d attempts, want at most %d", attempts, maxCreateFailures)
	}
	msgs := e.fake.Messages("#incidents")
	if len(msgs) != 2 {
		t.Fatalf("#incidents has %d messages, want the declaration and the incident message", len(msgs))
	}
	mustContain(t, "declaration", msgs[0].Text, "🔴 INCIDENT DECLARED", "No incident channel", "3 attempts")
}

// Sev 1 incidents of one service declared at once (the outbox delivers
// incidents concurrently) each get their own channel, at about one call
// each: they do not all race for the same few names and fall back (attack
// finding: 27 at once made 5 channels and 22 fallbacks).
func TestConcurrentSev1OfAServiceEachGetAChannel(t *testing.T) {
	e := newEnv(t, nil)
	const n = 24
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		ev := event(incident.Opened, 1, 0, alert("ServiceDown", i))
		ev.Incident.ID = fmt.Sprintf("api-%012d", i)
		wg.Go(func() { e.notify(t, ev) })
	}
	wg.Wait()
	created := e.fake.CreatedChannels()
	if len(created) != n {
		t.Fatalf("%d channels created for %d concurrent Sev 1 incidents", len(created), n)
	}
	if calls := callsOf(e.fake, "conversations.create"); calls > 2*n {
		t.Errorf("%d conversations.create calls for %d declarations, want about one each", calls, n)
	}
	if msgs := e.fake.Messages("#incidents"); len(msgs) != n {
		t.Errorf("#incidents has %d messages, want %d announcements and no fallback declaration", len(msgs), n)
	}
}
