package triage

import (
	"fmt"
	"strings"
	"time"
)

// postMortemChecklist is the runbook's post-incident procedure.
var postMortemChecklist = []string{
	"Save all logs and diagnostics (evidence below)",
	"Write the timeline: detection, response, resolution",
	"Identify the root cause and the contributing factors",
	"Document what went well and what did not",
	"Create action items with owners and due dates",
	"Update runbooks and alerts where they fell short",
	"Share the post-mortem with the team and stakeholders",
}

// Postmortem is the incident's post-mortem draft in Markdown: summary,
// impact, timeline, root cause, fix, verification, evidence links and the
// runbook's post-incident checklist. Times are UTC.
func Postmortem(d IncidentDetail) string {
	var b strings.Builder
	utc := func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	line := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	fmt.Fprintf(&b, "# Post-mortem: %s\n\n", line(d.Title))
	b.WriteString("## Summary\n\n")
	fmt.Fprintf(&b, "- Incident: `%s`, service `%s`\n", d.ID, d.Service)
	fmt.Fprintf(&b, "- Severity: Sev %d (peak Sev %d)\n", d.Severity, d.PeakSeverity)
	fmt.Fprintf(&b, "- State: %s", d.State)
	if d.Recurrences > 0 {
		fmt.Fprintf(&b, ", reopened %d times", d.Recurrences)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "- Detected: %s\n- Resolved: %s\n- Closed: %s\n", utc(d.Started), utc(d.Resolved), utc(d.Closed))
	if len(d.Reasons) > 0 {
		fmt.Fprintf(&b, "- Deciding reason: %s\n", line(d.Reasons[0]))
	}
	b.WriteString("\n## Impact\n\n")
	b.WriteString(closureLine(d.Closure, "Impact:", "not measured") + "\n")
	b.WriteString("\n## Timeline\n\n")
	if d.TimelineDropped > 0 {
		fmt.Fprintf(&b, "(%d earlier entries dropped)\n\n", d.TimelineDropped)
	}
	b.WriteString("| time (UTC) | event | |\n|---|---|---|\n")
	for _, e := range d.Timeline {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", e.At.UTC().Format("2006-01-02 15:04:05"), e.Kind, strings.ReplaceAll(line(e.Text), "|", `\|`))
	}
	b.WriteString("\n## Root cause\n\n")
	switch {
	case d.Diagnosis != nil && d.Diagnosis.Summary != "":
		b.WriteString(line(d.Diagnosis.Summary) + "\n")
		for _, ev := range d.Diagnosis.Evidence {
			b.WriteString("- " + line(ev) + "\n")
		}
	default:
		b.WriteString("Not identified by the quick diagnosis.\n")
	}
	b.WriteString("\n## Fix applied\n\n")
	b.WriteString(closureLine(d.Closure, "Fix Applied:", "none recorded") + "\n")
	if d.Diagnosis != nil && d.Diagnosis.Command != "" {
		fmt.Fprintf(&b, "\nSuggested at declaration: `%s`\n", d.Diagnosis.Command)
	}
	b.WriteString("\n## Verification\n\n")
	if d.Verification != "" {
		b.WriteString(line(d.Verification) + "\n")
	} else {
		b.WriteString("Not verified yet.\n")
	}
	b.WriteString("\n## Evidence\n\n")
	fmt.Fprintf(&b, "- Incident with its timeline: `/api/incidents/%s`\n", d.ID)
	fmt.Fprintf(&b, "- Evidence saved at declaration: `/api/incidents/%s/evidence`\n", d.ID)
	b.WriteString("\n## Post-incident checklist\n\n")
	for _, c := range postMortemChecklist {
		b.WriteString("- [ ] " + c + "\n")
	}
	return b.String()
}

// closureLine is the text after prefix in the closure message's line that
// starts with it, or def.
func closureLine(closure, prefix, def string) string {
	for _, l := range strings.Split(closure, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
	return def
}
