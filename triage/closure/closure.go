// Package closure builds the runbook's Step 8 message, once, for every
// receiver and the incident record: what was resolved, how long it took,
// the root cause, the fix applied (read from the Kubernetes snapshots at
// declaration and at verification), the impact, the verification result,
// the monitoring period and, for Sev 1–2, when the post-mortem is due.
package closure

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/severity"
)

// PostMortemAfter: a Sev 1–2 post-mortem is due this long after the end.
const PostMortemAfter = 24 * time.Hour

// Impact is the failed requests over the incident, when measured.
type Impact struct {
	Known   bool
	Failed  float64
	Minutes int
	Note    string // why it is not measured
}

// Input is what the message says.
type Input struct {
	Started, Ended time.Time
	Diagnosis      *diagnosis.Diagnosis // nil: no cause identified
	// Before is the Kubernetes snapshot at declaration (the diagnosis'),
	// After the one at verification, at AfterAt; either may be nil.
	Before, After *diagnosis.Snapshot
	AfterAt       time.Time
	Impact        Impact
	Status        string // the verification result
	MonitorFor    time.Duration
	PeakSeverity  severity.Level
}

// Message is the closure message, one line per item.
func Message(in Input) string {
	var b strings.Builder
	b.WriteString("✅ INCIDENT RESOLVED\n")
	minutes := int(math.Round(in.Ended.Sub(in.Started).Minutes()))
	fmt.Fprintf(&b, "Duration: %s to %s = %d minutes\n", stamp(in.Started), stamp(in.Ended), minutes)
	cause := "not identified"
	if d := in.Diagnosis; d != nil && d.Summary != "" && d.Category != diagnosis.Skipped {
		cause = oneLine(d.Summary)
	}
	fmt.Fprintf(&b, "Root Cause: %s\n", cause)
	fmt.Fprintf(&b, "Fix Applied: %s\n", FixApplied(in.Before, in.After, in.AfterAt))
	if in.Impact.Known {
		fmt.Fprintf(&b, "Impact: ~%s failed requests over %d minutes\n", count(in.Impact.Failed), in.Impact.Minutes)
	} else {
		b.WriteString("Impact: not measured")
		if in.Impact.Note != "" {
			b.WriteString(" (" + oneLine(in.Impact.Note) + ")")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Status: %s\n", oneLine(in.Status))
	fmt.Fprintf(&b, "Monitoring: Continuing for %s", span(in.MonitorFor))
	if in.PeakSeverity == 1 || in.PeakSeverity == 2 {
		fmt.Fprintf(&b, "\nPost-mortem: due %s", stamp(in.Ended.Add(PostMortemAfter)))
	}
	return b.String()
}

// FixApplied tells what changed in the workload between the snapshots: a
// rollback to an earlier revision's images, a new image, a scale change,
// restarted pods, or "none detected".
func FixApplied(before, after *diagnosis.Snapshot, at time.Time) string {
	if before == nil || after == nil {
		return "none detected (no Kubernetes snapshot to compare)"
	}
	var fixes []string
	if b, a := before.Deployment, after.Deployment; b != nil && a != nil {
		if a.Revision != b.Revision && len(after.Rollouts) > 0 {
			now := after.Rollouts[0] // the current revision
			switch rev := earlier(before, now.Images); {
			case rev > 0:
				fixes = append(fixes, fmt.Sprintf("rollback to revision %d at %s", rev, stamp(at)))
			case now.Change != "":
				fixes = append(fixes, "new image: "+now.Change)
			default:
				fixes = append(fixes, fmt.Sprintf("new revision %d (%s)", now.Revision, strings.Join(now.Images, ", ")))
			}
		}
		if a.Desired != b.Desired {
			fixes = append(fixes, fmt.Sprintf("scaled from %d to %d replicas", b.Desired, a.Desired))
		}
	}
	if len(fixes) == 0 && restarted(before, after) {
		fixes = append(fixes, "pods restarted")
	}
	if len(fixes) == 0 {
		return "none detected"
	}
	return strings.Join(fixes, "; ")
}

// earlier is the revision before the declaration's current one that ran
// images, or 0: going back to it is a rollback.
func earlier(before *diagnosis.Snapshot, images []string) int64 {
	for i, r := range before.Rollouts {
		if i == 0 {
			continue // the revision that was current at declaration
		}
		if slices.Equal(r.Images, images) {
			return r.Revision
		}
	}
	return 0
}

// restarted: none of the pods at declaration is there any more, or their
// containers restarted.
func restarted(before, after *diagnosis.Snapshot) bool {
	if len(before.Pods) == 0 || len(after.Pods) == 0 {
		return false
	}
	old := map[string]int32{}
	for _, p := range before.Pods {
		old[p.Name] = p.Restarts
	}
	for _, p := range after.Pods {
		if r, ok := old[p.Name]; ok && p.Restarts == r {
			return false
		}
	}
	return true
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// span writes a monitoring period as the runbook does: "1 hour", "30 minutes".
func span(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return d.String()
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func count(f float64) string {
	switch {
	case f >= 10000:
		return fmt.Sprintf("%.0fk", f/1000)
	case f >= 1:
		return fmt.Sprintf("%.0f", f)
	}
	return "0"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
