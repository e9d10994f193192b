package triage

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/actions/pdin"
	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/internal/clip"
	"github.com/amtriage/amtriage/rules"
)

// pagerdutyWebhook is POST /pagerduty/webhook: PagerDuty webhooks v3. It
// is verified by its signature (pagerduty.webhook_secret_file), not by our
// auth, which PagerDuty cannot send. A verified incident event is stored as
// an action and answered 2xx once committed (PagerDuty disables a
// subscription that keeps failing); the leader puts it on the timeline.
func (a *API) pagerdutyWebhook(w http.ResponseWriter, r *http.Request) {
	secret := a.pagerdutySecret()
	if len(secret) == 0 {
		a.fail(w, http.StatusNotFound, "no PagerDuty webhook subscription is configured (pagerduty.webhook_secret_file)")
		return
	}
	count := func(outcome string) { a.Metrics.ActionRequests.WithLabelValues("pagerduty", outcome).Inc() }
	done, ok := a.readActionBody(w, r, pdin.DefaultMaxBytes, count)
	if !ok {
		return
	}
	defer done()
	body, err := pdin.ReadRequest(r, [][]byte{secret}, 0)
	if err != nil {
		reason := string(pdin.ReasonOf(err))
		count(reason)
		code := http.StatusUnauthorized
		if reason == string(pdin.ReasonTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		a.fail(w, code, "refused: "+reason)
		return
	}
	ev, err := pdin.DecodeEvent(body)
	if err != nil {
		count("bad_event")
		a.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if ev.Ignorable || !pdin.Known(ev.Type) {
		count("ignored")
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored", "event": ev.Type})
		return
	}
	// What PagerDuty names is kept within the action's limits, clipped
	// rather than refused: a verified event refused for ever would end
	// with PagerDuty disabling the subscription.
	field := func(s string) string { return clip.Bytes(s, actions.MaxFieldBytes) }
	act := &actions.Action{
		Key: clip.Bytes("pagerduty:"+ev.ID, actions.MaxKeyBytes), Kind: actions.PagerDuty, At: ev.OccurredAt,
		By:        actions.Actor{Source: "pagerduty"},
		Incident:  field(ev.DedupKey()),
		PagerDuty: &actions.PagerDutyEvent{Type: field(ev.Type), IncidentID: field(ev.Incident.ID), HTMLURL: field(ev.Incident.HTMLURL)},
	}
	if ev.Agent != nil {
		act.By.ID, act.By.Name = field(ev.Agent.ID), field(ev.Agent.Summary)
	}
	for _, as := range ev.Incident.Assignees {
		if name := cmp.Or(as.Summary, as.ID); name != "" && len(act.PagerDuty.Assignees) < actions.MaxAssignees {
			act.PagerDuty.Assignees = append(act.PagerDuty.Assignees, field(name))
		}
	}
	if act.At.IsZero() {
		act.At = time.Now().UTC()
	}
	if err := act.Validate(); err != nil {
		count("bad_event")
		a.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := a.Committer.AppendAction(r.Context(), act); err != nil {
		count("not_stored")
		a.Log.Error("storing a PagerDuty webhook", "event", ev.ID, "err", err)
		a.fail(w, http.StatusServiceUnavailable, "could not store the event; retry")
		return
	}
	count("accepted")
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "event": ev.Type})
}

// slackInteractions is POST /slack/interactions, the Slack app's
// interactivity URL: verified by its signature (slack.signing_secret_file),
// not our auth. A click is stored as an action and answered 200 once
// committed, well within Slack's 3 s; the leader applies it. A button this
// amtriage cannot act on yet is answered to its user alone (response_url).
func (a *API) slackInteractions(w http.ResponseWriter, r *http.Request) {
	secret := a.slackSecret()
	if len(secret) == 0 {
		a.fail(w, http.StatusNotFound, "no Slack app is configured (slack.signing_secret_file)")
		return
	}
	count := func(outcome string) { a.Metrics.ActionRequests.WithLabelValues("slack", outcome).Inc() }
	done, ok := a.readActionBody(w, r, slackin.DefaultMaxBytes, count)
	if !ok {
		return
	}
	defer done()
	now := time.Now()
	body, err := slackin.ReadRequest(r, secret, now, 0)
	if err != nil {
		reason := slackin.ReasonOf(err)
		count(reason)
		code := http.StatusUnauthorized
		if errors.Is(err, slackin.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		a.fail(w, code, "refused: "+reason)
		return
	}
	in, err := slackin.DecodeInteraction(body)
	switch {
	case errors.Is(err, slackin.ErrIgnored):
		count("ignored")
		w.WriteHeader(http.StatusOK)
		return
	case err != nil:
		count("bad_payload")
		a.fail(w, http.StatusBadRequest, err.Error())
		return
	case len(in.Actions) != 1:
		// A click is one action: Slack never sends more in a
		// block_actions payload, and each would cost a commit and a reply.
		count("bad_payload")
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("%d actions in one interaction: one click is one action", len(in.Actions)))
		return
	}
	for _, act := range in.Actions {
		stored, refusal := a.slackAction(&in, act, now)
		if refusal != "" {
			count("refused")
			a.replyLater(in.ResponseURL, refusal)
			continue
		}
		if err := a.Committer.AppendAction(r.Context(), stored); err != nil {
			count("not_stored")
			a.Log.Error("storing a Slack action", "action", act.ID, "incident", act.Value.Incident, "err", err)
			a.fail(w, http.StatusServiceUnavailable, "could not store the action; retry")
			return
		}
		count("accepted")
	}
	w.WriteHeader(http.StatusOK)
}

// readActionBody reads an action request's body as intake reads a
// webhook's (the in-flight budget, intake.min_body_rate), at most limit
// bytes, and puts it back on r for the signature check; these endpoints
// face the internet and nothing is verified before the body is whole. It
// takes part in the drain like a webhook. Unless it answered, the caller
// calls done once answered.
func (a *API) readActionBody(w http.ResponseWriter, r *http.Request, limit int64, count func(string)) (done func(), ok bool) {
	if !a.begin() {
		count("draining")
		a.fail(w, http.StatusServiceUnavailable, "shutting down; retry")
		return nil, false
	}
	br := &bodyReader{a: a, limit: limit}
	fail := func(code int, msg string) (func(), bool) {
		br.release()
		a.end()
		if code == http.StatusRequestTimeout || code == http.StatusServiceUnavailable {
			w.Header().Set("Connection", "close") // the rest of the body is not read
		}
		a.fail(w, code, msg)
		return nil, false
	}
	if r.ContentLength > limit {
		count("too_large")
		return fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds %d", r.ContentLength, limit))
	}
	body, code, msg := br.read(w, r)
	if code != 0 {
		count(map[int]string{http.StatusRequestEntityTooLarge: "too_large", http.StatusRequestTimeout: "too_slow", http.StatusServiceUnavailable: "overloaded", http.StatusBadRequest: "bad_request"}[code])
		return fail(code, msg)
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return func() { br.release(); a.end() }, true
}

// slackAction is the action a click asks for, or why it is refused at
// once (a refusal the leader must make, on the incident as it is then, is
// answered by the leader). Roll back is checked here against
// actions.rollback: only enabled, only for the users it lists.
func (a *API) slackAction(in *slackin.Interaction, act slackin.Action, now time.Time) (*actions.Action, string) {
	stored := &actions.Action{Key: in.Key(act), At: now.UTC(),
		By:       actions.Actor{Source: "slack", ID: in.UserID, Name: in.UserName},
		Incident: act.Value.Incident, ResponseURL: in.ResponseURL}
	set := a.actionSettings()
	if len(set.teams) > 0 && !slices.Contains(set.teams, in.UserTeamID) {
		a.Log.Warn("Slack click refused: the user's workspace is not in slack.allowed_teams", "team", in.UserTeamID, "user", in.UserID)
		return nil, "amtriage takes clicks from its own Slack workspace only (slack.allowed_teams)."
	}
	switch act.ID {
	case slackin.ActAck:
		stored.Kind = actions.Acknowledge
	case slackin.ActSilence1h, slackin.ActSilence4h, slackin.ActUnsilence:
		switch {
		case !set.silences:
			return nil, "amtriage cannot silence from Slack: no Alertmanager is configured (alertmanager.url)."
		case !set.silencer:
			return nil, "amtriage cannot silence from Slack right now: its Alertmanager receiver is not running (see amtriage's log)."
		}
		stored.Kind, stored.SilenceFor = actions.Silence, act.ID.SilenceFor()
		if act.ID == slackin.ActUnsilence {
			stored.Kind = actions.Unsilence
		}
	case slackin.ActResolve:
		stored.Kind = actions.Resolve
	case slackin.ActRollback:
		r := act.Value.Rollback
		switch {
		case !set.rollback.Enabled:
			return nil, "Roll back is not enabled here (actions.rollback.enabled); run the diagnosis's command yourself."
		case !set.rollback.MayRollBack(in.UserID):
			a.Log.Warn("rollback refused: user not in actions.rollback.allowed_users", "user", in.UserID, "incident", act.Value.Incident)
			return nil, "You are not allowed to roll back from Slack (actions.rollback.allowed_users); ask someone who is, or run the command yourself."
		case !set.rollbacker:
			return nil, "Roll back cannot be done right now: amtriage has no Kubernetes client (see its log); run the diagnosis's command yourself."
		case r == nil:
			return nil, "This button names no rollback."
		}
		stored.Kind = actions.Rollback
		stored.Rollback = &diagnosis.Rollback{Namespace: r.Namespace, Deployment: r.Deployment, From: r.From, To: r.To}
	default:
		return nil, "amtriage does not know this button."
	}
	if err := stored.Validate(); err != nil {
		return nil, "amtriage cannot take this click: " + err.Error()
	}
	return stored, ""
}

// actionSettings are what the Slack buttons may do, as last loaded.
type actionSettings struct {
	silences bool // alertmanager.url is set
	rollback rules.RollbackConfig
	// silencer and rollbacker: the receivers that carry them out run.
	silencer, rollbacker bool
	teams                []string // slack.allowed_teams
}

func (a *API) actionSettings() actionSettings {
	if s := a.actionsSet.Load(); s != nil {
		return *s
	}
	return actionSettings{}
}

// setActions takes the configuration and the receivers in force (call it
// after setReceivers).
func (a *API) setActions(cfg *rules.Config) {
	a.replayMu.Lock()
	names := a.Receivers
	a.replayMu.Unlock()
	a.actionsSet.Store(&actionSettings{silences: cfg.Alertmanager.URL != "", rollback: cfg.Actions.Rollback,
		silencer: slices.Contains(names, "alertmanager"), rollbacker: slices.Contains(names, "kubernetes"),
		teams: slices.Clone(cfg.Slack.AllowedTeams)})
}

// replyLater answers a Slack user alone, off the request (Slack wants its
// answer within 3 s): a refusal at the endpoint.
func (a *API) replyLater(responseURL, text string) {
	if responseURL == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := slackin.EphemeralReply(ctx, a.replyClient(), responseURL, text, a.replyOpts...); err != nil {
			a.Log.Warn("answering a Slack user", "err", err)
		}
	}()
}

func (a *API) replyClient() *http.Client {
	if a.ReplyClient != nil {
		return a.ReplyClient
	}
	return &http.Client{Timeout: 10 * time.Second}
}
