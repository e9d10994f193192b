package triage

import (
	"cmp"
	"fmt"
	"github.com/amtriage/amtriage/view"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/triage/postmortem"
)

// maxReportAlerts bounds the alerts a post-mortem's timeline lists; a
// storm's others are counted.
const maxReportAlerts = view.MaxAlerts

// Postmortem is the post-mortem of an incident (open or kept after it
// resolved) from what is known of it now.
// hasEvidence says whether evidence was saved for it, to link.
func (p *Pipeline) Postmortem(id string, now time.Time, hasEvidence bool) (postmortem.Report, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Get(id)
	if inc == nil {
		return postmortem.Report{}, false
	}
	return reportOf(inc, now, hasEvidence), true
}

// reportOf fills a post-mortem from the incident record. Its timeline is
// the times the record keeps (detection, its alerts, the Sev 1
// declaration, the last triage, the escalation, the resolution); a richer
// timeline adds entries, the renderer takes them all.
func reportOf(inc *incident.Incident, now time.Time, hasEvidence bool) postmortem.Report {
	r := postmortem.Report{
		ID: inc.ID, Title: inc.Title, Service: inc.Service, Status: cmp.Or(inc.State, inc.Status),
		Severity: int(inc.Severity), PeakSeverity: int(inc.PeakSeverity),
		Start: inc.StartedAt, Now: now,
	}
	if inc.Status == incident.Resolved {
		r.End = inc.ResolvedAt
	}
	switch {
	case inc.Recurrences == 1:
		r.Status += ", reopened once"
	case inc.Recurrences > 1:
		r.Status += fmt.Sprintf(", reopened %d times", inc.Recurrences)
	}
	add := func(at time.Time, format string, args ...any) {
		if !at.IsZero() {
			r.Timeline = append(r.Timeline, postmortem.Entry{At: at, What: fmt.Sprintf(format, args...)})
		}
	}
	if len(inc.Timeline) == 0 { // the timeline has its own detection entry
		add(inc.StartedAt, "detected: the first alert started firing")
	}
	// The incident's own timeline: declarations, severity changes,
	// diagnoses, updates sent, verification checks, recurrences, closure.
	if inc.TimelineDropped > 0 {
		add(inc.StartedAt, "%d earlier timeline entries dropped (the last %d are kept)", inc.TimelineDropped, incident.MaxTimeline)
	}
	for _, e := range inc.Timeline {
		if e.Text == "" {
			add(e.At, "%s", e.Kind)
		} else {
			add(e.At, "%s: %s", e.Kind, e.Text)
		}
	}
	if len(inc.Timeline) == 0 { // a record from before the timeline existed
		add(inc.Sev1At, "declared Sev 1")
		if inc.Status == incident.Firing {
			why := ""
			if len(inc.Reasons) > 0 {
				why = ": " + inc.Reasons[0]
			}
			add(inc.LastEvaluated, "last triaged: Sev %d by rule %d%s", inc.Severity, inc.Rule, why)
		}
		add(inc.EscalatedAt, "escalated: Sev 1 with no identified cause; the senior engineer on call paged")
		add(inc.ResolvedAt, "resolved: every alert resolved")
	}
	alerts := inc.SortedAlerts()
	for i, a := range alerts {
		if i == maxReportAlerts {
			add(now, "%d more alerts not listed", len(alerts)-i)
			break
		}
		add(a.StartsAt, "alert %s started firing (Sev %d, rule %d)", a.Name, a.Decision.Severity, a.Decision.Rule)
		if a.Status == incident.Resolved {
			add(a.EndsAt, "alert %s resolved (%s)", a.Name, resolvedBy(a.ResolvedBy))
		}
	}
	slices.SortStableFunc(r.Timeline, func(a, b postmortem.Entry) int { return a.At.Compare(b.At) })

	r.Impact = append(r.Impact, fmt.Sprintf("peak severity Sev %d", inc.PeakSeverity))
	if len(inc.Reasons) > 0 {
		r.Impact = append(r.Impact, "deciding reason: "+inc.Reasons[0])
	}
	r.Impact = append(r.Impact, fmt.Sprintf("alerts: %d in all, %d firing", len(alerts)+inc.Left, inc.Firing),
		"failed requests: "+closureLine(inc.Closure, "Impact:", "not measured"))
	if fix := closureLine(inc.Closure, "Fix Applied:", ""); fix != "" {
		r.Fix = fix
	}
	r.Verification = inc.Verification

	if d := inc.Diagnosis; d != nil {
		r.RootCause = fmt.Sprintf("%s (%s)", d.Summary, d.Category)
		if !incident.CauseIdentified(d) {
			r.RootCause = "not identified by the quick diagnosis: " + r.RootCause
		}
		r.RootCauseEvidence = d.Evidence
		r.SuggestedFix = d.Command
	}

	seen := map[string]bool{}
	link := func(text, u string) {
		if u != "" && !seen[u] {
			seen[u] = true
			r.Evidence = append(r.Evidence, postmortem.Link{Text: text, URL: u})
		}
	}
	link("incident in the API, with its timeline", "/api/incidents/"+url.PathEscape(inc.ID))
	if hasEvidence {
		link("evidence saved at declaration", "/api/incidents/"+url.PathEscape(inc.ID)+"/evidence")
	}
	for i, a := range alerts {
		if i == maxReportAlerts {
			break
		}
		link("runbook of "+a.Name, a.Annotations["runbook_url"])
		link("source of "+a.Name, a.GeneratorURL)
	}
	link("Alertmanager", inc.ExternalURL)
	return r
}

func resolvedBy(by string) string {
	switch by {
	case incident.ByAbsence:
		return "missing from its group's notification"
	case incident.ByStaleness:
		return "not seen for incidents.stale_after"
	default:
		return "by Alertmanager"
	}
}

// closureLine is the text after prefix in the closure message's line that
// starts with it, or def.
func closureLine(closure, prefix, def string) string {
	for _, l := range strings.Split(closure, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
	return def
}
