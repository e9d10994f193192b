package triage

import (
	"fmt"
	"net/url"
	"time"

	"github.com/amtriage/amtriage/triage/incident"
	"github.com/amtriage/amtriage/triage/postmortem"
)

// maxReportAlerts bounds the alerts a post-mortem's timeline lists; a
// storm's others are counted.
const maxReportAlerts = MaxViewAlerts

// Postmortem is the post-mortem of an incident (open or kept after it
// resolved) from what is known of it now.
func (p *Pipeline) Postmortem(id string, now time.Time) (postmortem.Report, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Get(id)
	if inc == nil {
		return postmortem.Report{}, false
	}
	return reportOf(inc, now), true
}

// reportOf fills a post-mortem from the incident record. Its timeline is
// the times the record keeps (detection, its alerts, the Sev 1
// declaration, the last triage, the escalation, the resolution); a richer
// timeline adds entries, the renderer takes them all.
func reportOf(inc *incident.Incident, now time.Time) postmortem.Report {
	r := postmortem.Report{
		ID: inc.ID, Title: inc.Title, Service: inc.Service, Status: inc.Status,
		Severity: int(inc.Severity), PeakSeverity: int(inc.PeakSeverity),
		Start: inc.StartedAt, Now: now,
	}
	if inc.Status == incident.Resolved {
		r.End = inc.ResolvedAt
	}
	add := func(at time.Time, format string, args ...any) {
		if !at.IsZero() {
			r.Timeline = append(r.Timeline, postmortem.Entry{At: at, What: fmt.Sprintf(format, args...)})
		}
	}
	add(inc.StartedAt, "detected: the first alert started firing")
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

	r.Impact = append(r.Impact, fmt.Sprintf("peak severity Sev %d", inc.PeakSeverity))
	if len(inc.Reasons) > 0 {
		r.Impact = append(r.Impact, "deciding reason: "+inc.Reasons[0])
	}
	r.Impact = append(r.Impact, fmt.Sprintf("alerts: %d in all, %d firing", len(alerts)+inc.Left, inc.Firing),
		"failed requests: not measured")

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
	link("incident in the API", "/api/incidents/"+url.PathEscape(inc.ID))
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
