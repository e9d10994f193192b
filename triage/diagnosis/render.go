package diagnosis

import (
	"fmt"
	"strings"

	"github.com/amtriage/amtriage/internal/clip"
)

// Caps of the renderings.
const (
	MaxText = 2500 // characters (runes) of Text

	textPods     = 5
	textEvents   = 5
	textLogLines = 5
	textLine     = 240 // runes per rendered line

	detailPods    = 10
	detailEvents  = 5
	detailMessage = 200 // runes per message or log line in Details
)

// Text renders the diagnosis as plain text for Slack or a log: the summary,
// the command in backticks, the evidence, then a compact snapshot
// (deployment counts, up to 5 pods, 5 events, the latest rollout, 5 log
// lines). It is at most MaxText characters, cut on a rune boundary.
func (d Diagnosis) Text() string {
	var b strings.Builder
	line := func(format string, args ...any) {
		b.WriteString(clip.Runes(strings.TrimRight(flat(fmt.Sprintf(format, args...)), " "), textLine))
		b.WriteByte('\n')
	}
	line("Diagnosis (%s): %s", d.Category, d.Summary)
	if d.Command != "" {
		line("Command: `%s`", d.Command)
	}
	if len(d.Evidence) > 0 {
		b.WriteString("Evidence:\n")
		for _, e := range d.Evidence {
			line("• %s", e)
		}
	}
	if s := d.Snapshot; s != nil {
		line("Kubernetes: %s in namespace %s", orDash(s.Workload), orDash(s.Namespace))
		if dep := s.Deployment; dep != nil {
			rev := ""
			if dep.Revision > 0 {
				rev = fmt.Sprintf(", revision %d", dep.Revision)
			}
			line("Deployment %s: desired %d, updated %d, ready %d, available %d%s",
				dep.Name, dep.Desired, dep.Updated, dep.Ready, dep.Available, rev)
		}
		if len(s.Pods) > 0 {
			total := max(s.PodsTotal, len(s.Pods))
			if len(s.Pods) > textPods || total > len(s.Pods) {
				line("Pods (%d of %d):", min(len(s.Pods), textPods), total)
			} else {
				b.WriteString("Pods:\n")
			}
			for i, p := range s.Pods {
				if i == textPods {
					break
				}
				line("- %s", podText(p))
			}
		}
		if len(s.Events) > 0 {
			b.WriteString("Events (newest first):\n")
			for i, e := range s.Events {
				if i == textEvents {
					break
				}
				line("- %s %s", e.Time.UTC().Format("15:04:05Z"), strings.TrimPrefix(eventLine(e), "event "))
			}
		}
		if len(s.Rollouts) > 0 {
			r := s.Rollouts[0]
			text := fmt.Sprintf("Latest rollout: revision %d", r.Revision)
			if r.ReplicaSet != "" {
				text += " (" + r.ReplicaSet + ")"
			}
			if !r.Created.IsZero() {
				text += " created " + r.Created.UTC().Format("2006-01-02 15:04Z")
			}
			switch {
			case r.Change != "":
				text += ": " + r.Change
			case len(r.Images) > 0:
				text += ": " + strings.Join(r.Images, ", ")
			}
			line("%s", text)
		}
		if l := s.Logs; l != nil && len(l.Lines) > 0 {
			which := ""
			if l.Previous {
				which = ", previous container"
			}
			line("Logs %s/%s%s:", l.Pod, l.Container, which)
			for i, ll := range l.Lines {
				if i == textLogLines {
					break
				}
				line("  | %s", ll)
			}
		}
		for _, p := range s.Partial {
			line("Incomplete: %s", p)
		}
	}
	return clip.Runes(strings.TrimRight(b.String(), "\n"), MaxText)
}

// podText: "api-1 Running, not ready, CrashLoopBackOff, 5 restarts, last Error (exit 1): message".
func podText(p Pod) string {
	parts := []string{p.Name + " " + orDash(p.Phase)}
	if !p.Ready && p.Phase != "Succeeded" {
		parts = append(parts, "not ready")
	}
	if p.Reason != "" {
		parts = append(parts, p.Reason)
	}
	if p.Restarts > 0 {
		parts = append(parts, fmt.Sprintf("%d restarts", p.Restarts))
	}
	if p.LastTerminated != "" {
		parts = append(parts, "last "+p.LastTerminated)
	}
	s := strings.Join(parts, ", ")
	if m := clean(p.Message); m != "" {
		s += ": " + m
	}
	return s
}

// Details is the diagnosis for PagerDuty's custom_details: category,
// summary, command, evidence and a trimmed snapshot (deployment, at most
// 10 pods, 5 events, the rollouts, the log lines), messages clipped. Every
// value is JSON-serialisable and the whole stays a few KiB.
func (d Diagnosis) Details() map[string]any {
	m := map[string]any{
		"category": string(d.Category),
		"summary":  d.Summary,
	}
	if d.Command != "" {
		m["command"] = d.Command
	}
	if len(d.Evidence) > 0 {
		ev := make([]string, len(d.Evidence))
		for i, e := range d.Evidence {
			ev[i] = clip.Runes(clean(e), detailMessage)
		}
		m["evidence"] = ev
	}
	s := d.Snapshot
	if s == nil {
		return m
	}
	m["namespace"] = s.Namespace
	m["workload"] = s.Workload
	if s.Deployment != nil {
		m["deployment"] = *s.Deployment
	}
	if len(s.Pods) > 0 {
		pods := make([]Pod, 0, min(len(s.Pods), detailPods))
		for i, p := range s.Pods {
			if i == detailPods {
				break
			}
			p.Message = clip.Runes(clean(p.Message), detailMessage)
			pods = append(pods, p)
		}
		m["pods"] = pods
		m["pods_total"] = max(s.PodsTotal, len(s.Pods))
	}
	if len(s.Events) > 0 {
		events := make([]Event, 0, min(len(s.Events), detailEvents))
		for i, e := range s.Events {
			if i == detailEvents {
				break
			}
			e.Message = clip.Runes(clean(e.Message), detailMessage)
			events = append(events, e)
		}
		m["events"] = events
	}
	if len(s.Rollouts) > 0 {
		rs := make([]Rollout, 0, min(len(s.Rollouts), MaxRollouts))
		for i, r := range s.Rollouts {
			if i == MaxRollouts {
				break
			}
			r.Images = append([]string(nil), r.Images...)
			r.Change = clip.Runes(clean(r.Change), detailMessage)
			rs = append(rs, r)
		}
		m["rollouts"] = rs
	}
	if l := s.Logs; l != nil {
		logs := *l
		logs.Lines = make([]string, 0, min(len(l.Lines), MaxLogLines))
		for i, line := range l.Lines {
			if i == MaxLogLines {
				break
			}
			logs.Lines = append(logs.Lines, clip.Runes(clean(line), detailMessage))
		}
		m["logs"] = logs
	}
	if len(s.Partial) > 0 {
		partial := make([]string, len(s.Partial))
		for i, p := range s.Partial {
			partial[i] = clip.Runes(clean(p), detailMessage)
		}
		m["partial"] = partial
	}
	return m
}
