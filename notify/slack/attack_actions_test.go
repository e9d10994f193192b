package slack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/incident"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
)

// ATTACK: a refusal whose response_url cannot be reached (hooks.slack.com
// blackholed by an egress proxy, a network error) is retried for as long
// as the outbox keeps an event (24 h), although a response_url is dead 30
// minutes after the click: the user can never get it. Meanwhile the
// outbox delivers nothing else of that incident to Slack (events of one
// incident go in order), so the message stops following the incident
// (acknowledged, resolved) behind an answer nobody can receive. A refusal
// older than the response_url's lifetime should be dropped (logged), not
// retried.
func TestAttackRefusalRetriedPastResponseURLLifetime(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	e := newEnv(t, nil)
	e.n.cfg.ReplyOptions = []slackin.ReplyOption{slackin.AllowOrigin(downURL)}
	e.n.cfg.ReplyClient = &http.Client{Timeout: 5 * time.Second}
	ev := refused(downURL+"/actions/T1/1/x", "incident is closed")
	ev.At = now.Add(-(fakeslack.ResponseURLLifetime + time.Hour)) // clicked 90 minutes ago
	retry, err := e.n.Notify(context.Background(), ev)
	if retry {
		t.Errorf("a refusal clicked %s ago (its response_url dead for an hour) is retried: %v; it holds back the incident's other Slack events",
			now.Sub(ev.At), err)
	}
}

// ATTACK: Silence 4h, then Resolve (README: "silence them if they keep
// firing"). The silence lives on in Alertmanager for hours and mutes the
// next occurrence too, so the "new occurrence opens a new incident"
// promise fails for as long as it lasts; yet the resolved message drops
// every button (buttonBlocks returns nil once resolved), Unsilence
// included, although the book takes an Unsilence on a closed incident.
// While amtriage's silence is live the message should keep Unsilence
// (or Resolve should expire it).
func TestAttackResolvedMessageLosesUnsilence(t *testing.T) {
	ev := event(incident.Closed, 1, 0)
	ev.Incident.State, ev.Incident.Status, ev.Incident.ClosedBy = incident.StateClosed, incident.Resolved, "<@U1>"
	ev.Incident.Silence = &incident.Silence{RequestKey: "s1", By: "<@U1>", ID: "sil-1", Until: now.Add(4 * time.Hour)}
	blocks := buttonBlocks(ev, &State{}, now)
	js, _ := json.Marshal(blocks)
	if !strings.Contains(string(js), string(slackin.ActUnsilence)) {
		t.Errorf("a closed incident whose amtriage silence runs %s more shows no Unsilence button: %s", 4*time.Hour, js)
	}
}
