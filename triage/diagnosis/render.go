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
