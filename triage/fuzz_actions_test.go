package triage

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store"
)

const fuzzSlackSecret = "fuzz-signing-secret"

// actionDaemon is a daemon with every button allowed past the door (a
// silence target, rollback for U1) and one open incident, the one a
// fuzzed click aims at when its id is "@".
func actionDaemon(t *testing.T) (*Daemon, string) {
	t.Helper()
	cfg := rules.Default()
	cfg.Store.Path = t.TempDir()
	cfg.Slack.SigningSecret = fuzzSlackSecret
	cfg.Alertmanager.URL = "http://127.0.0.1:1"
	cfg.Actions.Rollback = rules.RollbackConfig{Enabled: true, AllowedUsers: []string{"U1"}}
	d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{
		&discardNotifier{}, namedDiscard("alertmanager"), namedDiscard("kubernetes")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(string(alertPayload("api", "firing", time.Now())))))
	if rec.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
	}
	if err := d.pipeline.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	open := d.pipeline.OpenIncidents()
	if len(open) != 1 {
		t.Fatalf("%d incidents open", len(open))
	}
	return d, open[0].ID
}

// FuzzSlackActionPath fuzzes signed clicks through the whole path: the
// endpoint, the inbox, the book. A signed click is answered 200 (taken or
// refused to its user) or 400 (a payload Slack would not send), never
// anything else; what was taken is applied without a dead letter, and the
// state reads back.
func FuzzSlackActionPath(f *testing.F) {
	f.Add("acknowledge", "@", "U1", "1700000000.000001", "", "", int64(0), int64(0))
	f.Add("silence_1h", "@", "U1", "1700000000.000002", "", "", int64(0), int64(0))
	f.Add("unsilence", "@", "U2", "1700000000.000003", "", "", int64(0), int64(0))
	f.Add("resolve", "@", "U1", "1700000000.000004", "", "", int64(0), int64(0))
	f.Add("rollback", "@", "U1", "1700000000.000005", "shop", "api", int64(2), int64(1))
	f.Add("rollback", "no-such-incident", "U1", "1", "shop", "api", int64(-1), int64(9223372036854775807))
	f.Add("silence_4h", "\x00<@U1>", "", "", "", "", int64(0), int64(0))
	f.Fuzz(func(t *testing.T, actionID, incidentID, user, actionTS, ns, deployment string, from, to int64) {
		d, id := actionDaemon(t)
		if incidentID == "@" {
			incidentID = id
		}
		v := map[string]any{"incident": incidentID}
		if ns != "" || deployment != "" || from != 0 || to != 0 {
			v["rollback"] = map[string]any{"ns": ns, "deployment": deployment, "from": from, "to": to}
		}
		value, _ := json.Marshal(v)
		payload, err := json.Marshal(map[string]any{
			"type": "block_actions", "user": map[string]any{"id": user, "username": "u"},
			"team": map[string]any{"id": "T1"}, "channel": map[string]any{"id": "C1"},
			"container":    map[string]any{"type": "message", "message_ts": "1700000000.000100"},
			"response_url": "https://hooks.slack.com/actions/T1/1/x",
			"actions":      []any{map[string]any{"type": "button", "action_id": actionID, "block_id": slackin.BlockIDPrefix + incidentID, "value": string(value), "action_ts": actionTS}},
		})
		if err != nil {
			t.Skip()
		}
		before := d.store.DeadLetterCounts()[store.InboxQueue]
		body := "payload=" + url.QueryEscape(string(payload))
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", slackin.Sign([]byte(fuzzSlackSecret), ts, []byte(body)))
		rec := httptest.NewRecorder()
		d.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest:
		default:
			t.Fatalf("a signed click answered %d %s", rec.Code, rec.Body)
		}
		if err := d.pipeline.Drain(context.Background()); err != nil {
			t.Fatalf("processing failed: %v", err)
		}
		if dead := d.store.DeadLetterCounts()[store.InboxQueue]; dead != before {
			list, _, _ := d.store.DeadLetters(1)
			t.Fatalf("a click the endpoint took was dead-lettered: %s", list[0].Error)
		}
		if why := d.pipeline.Stuck(); why != "" {
			t.Fatalf("not ready after a click: %s", why)
		}
		if _, err := d.store.LoadState(); err != nil {
			t.Fatalf("the state does not read back: %v", err)
		}
	})
}

// namedDiscard stands for an action receiver of that name: the endpoint
// takes the clicks only a running receiver can carry out.
type namedDiscard string

func (n namedDiscard) Name() string { return string(n) }
func (namedDiscard) Notify(context.Context, *incident.Event) (bool, error) {
	return false, nil
}
