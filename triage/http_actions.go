package triage

import (
	"net/http"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/actions/pdin"
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
	if a.draining.Load() {
		count("draining")
		a.fail(w, http.StatusServiceUnavailable, "shutting down; retry")
		return
	}
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
	act := &actions.Action{
		Key: "pagerduty:" + ev.ID, Kind: actions.PagerDuty, At: ev.OccurredAt,
		By:        actions.Actor{Source: "pagerduty"},
		Incident:  ev.DedupKey(),
		PagerDuty: &actions.PagerDutyEvent{Type: ev.Type, IncidentID: ev.Incident.ID, HTMLURL: ev.Incident.HTMLURL},
	}
	if ev.Agent != nil {
		act.By.ID, act.By.Name = ev.Agent.ID, ev.Agent.Summary
	}
	for _, as := range ev.Incident.Assignees {
		if len(act.PagerDuty.Assignees) < actions.MaxAssignees {
			act.PagerDuty.Assignees = append(act.PagerDuty.Assignees, as.Summary)
		}
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
