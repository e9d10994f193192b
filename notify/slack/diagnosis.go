package slack

import (
	"fmt"
	"strings"
	"time"

	"github.com/amtriage/amtriage/diagnosis"

	"github.com/amtriage/amtriage/internal/clip"
)

// Shown in the message; the full snapshot is in /api/incidents.
const (
	shownEvidence = 5
	shownPods     = 5
	shownEvents   = 3
	shownLogLines = 3
)

// diagnosisText is the runbook's quick diagnosis: the verdict, the exact
// command when there is one, and the evidence.
func diagnosisText(d *diagnosis.Diagnosis) string {
	var b strings.Builder
	// The summary opens with the category ("config or bad deployment: …").
	fmt.Fprintf(&b, "🩺 *Diagnosis:* %s", escape(oneLine(d.Summary)))
	if d.Command != "" {
		// Inside a code span Slack shows text literally, but its control
		// characters must still be entity-encoded.
		fmt.Fprintf(&b, "\n*Roll back:* `%s`", escape(oneLine(d.Command)))
	}
	for i, e := range d.Evidence {
		if i == shownEvidence {
			fmt.Fprintf(&b, "\n… +%d more", len(d.Evidence)-i)
			break
		}
		b.WriteString("\n• " + clip.Runes(escape(oneLine(e)), 300))
	}
	return b.String()
}

// snapshotText is the compact kubectl view: deployment counts, the most
// broken pods, the latest rollout, recent Warning events, error log lines.
func snapshotText(s *diagnosis.Snapshot) string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*Kubernetes:* %s in `%s`", escape(s.Workload), escape(s.Namespace))
	if d := s.Deployment; d != nil {
		fmt.Fprintf(&b, " — desired %d, updated %d, ready %d, available %d", d.Desired, d.Updated, d.Ready, d.Available)
	}
	for i, p := range s.Pods {
		if i == shownPods {
			fmt.Fprintf(&b, "\n… %d pods in all", s.PodsTotal)
			break
		}
		line := fmt.Sprintf("\n• `%s` %s", escape(p.Name), escape(p.Phase))
		if p.Reason != "" {
			line += " " + escape(p.Reason)
		}
		if !p.Ready {
			line += ", not ready"
		}
		if p.Restarts > 0 {
			line += fmt.Sprintf(", %d restarts", p.Restarts)
		}
		if p.LastTerminated != "" {
			line += ", last exit " + escape(p.LastTerminated)
		}
		b.WriteString(clip.Runes(line, 300))
	}
	if len(s.Rollouts) > 0 {
		r := s.Rollouts[0]
		line := fmt.Sprintf("\n*Latest rollout:* revision %d at %s UTC", r.Revision, r.Created.UTC().Format("15:04"))
		if r.Change != "" {
			line += " — " + escape(oneLine(r.Change))
		}
		b.WriteString(clip.Runes(line, 400))
	}
	for i, e := range s.Events {
		if i == shownEvents {
			break
		}
		b.WriteString(clip.Runes(fmt.Sprintf("\n⚠️ %s `%s` %s: %s", e.Time.UTC().Format(time.TimeOnly), escape(e.Object), escape(e.Reason), escape(oneLine(e.Message))), 400))
	}
	if l := s.Logs; l != nil {
		which := "logs"
		if l.Previous {
			which = "logs of the previous container"
		}
		if len(l.Lines) == 0 {
			fmt.Fprintf(&b, "\n*%s* `%s/%s`: no error lines", which, escape(l.Pod), escape(l.Container))
		} else {
			fmt.Fprintf(&b, "\n*%s* `%s/%s`:\n```", which, escape(l.Pod), escape(l.Container))
			for _, line := range l.Lines[max(0, len(l.Lines)-shownLogLines):] {
				b.WriteString("\n" + clip.Runes(escape(oneLine(line)), 300))
			}
			b.WriteString("\n```")
		}
	}
	for _, p := range s.Partial {
		b.WriteString("\n_" + clip.Runes(escape(oneLine(p)), 200) + "_")
	}
	return b.String()
}
