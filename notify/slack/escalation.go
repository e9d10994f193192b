package slack

import (
	"strings"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/clip"
)

// escalationNote is the runbook's escalation message ("Escalation
// Communication"), posted in the incident's thread: the call to the senior
// engineers, then service, duration so far, what has been checked, the
// current symptoms and why the responders are stuck.
func escalationNote(ev *incident.Event) string {
	f := ev.EscalationFacts()
	var b strings.Builder
	b.WriteString("🚨 *ESCALATION*: Sev 1 with no identified cause after " + duration(f.Stuck) + ".\n")
	b.WriteString("Escalating to senior engineering team.\nPage @senior-engineer-on-call immediately.\nActivating Incident War Room.\n")
	b.WriteString("*Service:* " + escape(f.Service) + "\n")
	b.WriteString("*Duration so far:* " + duration(f.SoFar) + "\n")
	b.WriteString("*What has been checked:*")
	if len(f.Checked) == 0 {
		b.WriteString(" nothing could be checked")
	}
	for _, c := range f.Checked {
		b.WriteString("\n• " + clip.Runes(escape(oneLine(c)), 300))
	}
	b.WriteString("\n*Current symptoms:*")
	if len(f.Symptoms) == 0 {
		b.WriteString(" unknown")
	}
	for _, s := range f.Symptoms {
		b.WriteString("\n• " + clip.Runes(escape(oneLine(s)), 500))
	}
	b.WriteString("\n*Why stuck:* " + clip.Runes(escape(oneLine(f.WhyStuck)), 500))
	return clip.Runes(b.String(), maxSectionText)
}
