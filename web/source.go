// Package web is amtriage's pages: the incident board (GET /), an
// incident's page (GET /incidents/{id}) and the public status page
// (GET /status). They are rendered on the server from the pipeline's views
// (html/template, escaping by context), work without JavaScript and embed
// their assets.
package web

import (
	"time"

	"github.com/amtriage/amtriage/triage/postmortem"
	"github.com/amtriage/amtriage/view"
)

// Source is what the pages show, as the pipeline keeps it (triage.Pipeline
// and the store implement it in the daemon). Every method returns copies.
type Source interface {
	// Board lists every incident not closed and those closed at or after
	// closedSince, without alerts, most severe first, then oldest.
	Board(closedSince time.Time) []view.Incident
	// IncidentDetail is one incident kept, with its alerts (at most
	// view.MaxAlerts) and timeline.
	IncidentDetail(id string) (view.Detail, bool)
	// Postmortem is the incident's post-mortem as of now.
	Postmortem(id string, now time.Time) (postmortem.Report, bool)
	// Evidence is the evidence gathered for a Sev 1–2 incident (the JSON
	// of GET /api/incidents/{id}/evidence), if any.
	Evidence(id string) ([]byte, bool, error)
}
