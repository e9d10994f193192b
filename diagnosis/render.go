package diagnosis

import (
	"github.com/amtriage/amtriage/internal/clip"
)

// Caps of Details.
const (
	detailPods    = 10
	detailEvents  = 5
	detailMessage = 200 // runes per message or log line in Details
)

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
		m["evidence"] = firstFixed(d.Evidence, len(d.Evidence), clipText)
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
		m["pods"] = firstFixed(s.Pods, detailPods, func(p Pod) Pod {
			p.Message = clipText(p.Message)
			return p
		})
		m["pods_total"] = max(s.PodsTotal, len(s.Pods))
	}
	if len(s.Events) > 0 {
		m["events"] = firstFixed(s.Events, detailEvents, func(e Event) Event {
			e.Message = clipText(e.Message)
			return e
		})
	}
	if len(s.Rollouts) > 0 {
		m["rollouts"] = firstFixed(s.Rollouts, MaxRollouts, func(r Rollout) Rollout {
			r.Images = append([]string(nil), r.Images...)
			r.Change = clipText(r.Change)
			return r
		})
	}
	if l := s.Logs; l != nil {
		logs := *l
		logs.Lines = firstFixed(l.Lines, MaxLogLines, clipText)
		m["logs"] = logs
	}
	if len(s.Partial) > 0 {
		m["partial"] = firstFixed(s.Partial, len(s.Partial), clipText)
	}
	return m
}

// firstFixed is a new slice of at most n of xs, each passed through fix.
func firstFixed[T any](xs []T, n int, fix func(T) T) []T {
	out := make([]T, 0, min(len(xs), n))
	for _, x := range xs[:min(len(xs), n)] {
		out = append(out, fix(x))
	}
	return out
}

// clipText is a message or log line as Details shows it.
func clipText(s string) string { return clip.Runes(clean(s), detailMessage) }
