// Package verify is the runbook's Step 7, "verify recovery": once an
// incident's alerts have all resolved, are the workload's pods Running and
// Ready, does the health probe answer 2xx, is the error ratio below the
// impact floor, and have no new Warning events appeared? A check that has
// no source is "not checked", never "passed".
package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/probe"
	"github.com/amtriage/amtriage/triage/signal"
)

// Outcome of one check.
type Outcome string

// The outcomes.
const (
	Passed     Outcome = "passed"
	Failed     Outcome = "failed"
	NotChecked Outcome = "not checked"
)

// The checks, by name.
const (
	Pods     = "pods"
	Health   = "health"
	Errors   = "error ratio"
	Warnings = "warning events"
)

// WarningWindow: Warning events newer than this fail verification.
const WarningWindow = 2 * time.Minute

// Check is one check's result.
type Check struct {
	Name    string  `json:"name"`
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail,omitempty"`
}

func (c Check) String() string {
	if c.Detail == "" {
		return c.Name + ": " + string(c.Outcome)
	}
	return c.Name + ": " + string(c.Outcome) + " (" + c.Detail + ")"
}

// Result is one verification round of one incident.
type Result struct {
	Checks []Check
	// Snapshot is the Kubernetes snapshot the pods check read, if any: the
	// closure message compares it with the one at declaration.
	Snapshot *diagnosis.Snapshot
}

// Verified: at least one check passed and none failed.
func (r Result) Verified() bool {
	passed := false
	for _, c := range r.Checks {
		switch c.Outcome {
		case Failed:
			return false
		case Passed:
			passed = true
		}
	}
	return passed
}

// Why says what keeps recovery from being verified: the failing checks'
// details, or that nothing could be checked.
func (r Result) Why() string {
	var out []string
	for _, c := range r.Checks {
		if c.Outcome == Failed {
			out = append(out, c.Detail)
		}
	}
	if len(out) == 0 {
		for _, c := range r.Checks {
			out = append(out, c.String())
		}
		return "no check could run: " + strings.Join(out, "; ")
	}
	return strings.Join(out, "; ")
}

// Summary lists the checks in one line.
func (r Result) Summary() string {
	out := make([]string, len(r.Checks))
	for i, c := range r.Checks {
		out[i] = c.String()
	}
	return strings.Join(out, "; ")
}

// Snapshotter reads a workload's snapshot from caches (*kube.Cluster).
type Snapshotter interface {
	Snapshot(t kube.Target, at time.Time) *diagnosis.Snapshot
}

// Prober probes a health URL, memoised per evaluation (*probe.Prober).
type Prober interface {
	Probe(ctx context.Context, ev *signal.Evaluation, rawURL string) probe.Result
}

// Ratios measures a profile's error ratio and knows its floor (*prom.Source).
type Ratios interface {
	ErrorRatio(ctx context.Context, ev *signal.Evaluation, svc *rules.Service) severity.Float
	ImpactFloor(svc *rules.Service) float64
}

// Impacts measures the failed requests over an incident (*prom.Source).
type Impacts interface {
	FailedRequests(ctx context.Context, ev *signal.Evaluation, svc *rules.Service, start, end time.Time) (float64, bool, string)
}

// Verifier runs the checks; a nil part is a check with no source. Impact,
// if set, measures the closure message's impact once recovery is verified.
type Verifier struct {
	Cluster Snapshotter
	Prober  Prober
	Ratios  Ratios
	Impact  Impacts
}

// Can reports whether any check has a source for an incident of profile
// svc (nil: none) whose alerts carried where (namespace, deployment…).
func (v *Verifier) Can(svc *rules.Service, where map[string]string) bool {
	if v == nil {
		return false
	}
	if _, ok := kube.TargetFor(where, svc); ok && v.Cluster != nil {
		return true
	}
	if svc == nil {
		return false
	}
	return (v.Prober != nil && svc.HealthURL != "") || (v.Ratios != nil && svc.Queries.ErrorRatio != "")
}

// Verify runs every check at the evaluation's instant. Everything it asks
// is memoised in ev: one round for many incidents of one service asks
// each source once.
func (v *Verifier) Verify(ctx context.Context, ev *signal.Evaluation, svc *rules.Service, where map[string]string) Result {
	var r Result
	at := ev.Time()
	if t, ok := kube.TargetFor(where, svc); ok && v.Cluster != nil {
		snap, _ := signal.Memo(ev, fmt.Sprintf("verify\x00snapshot\x00%s/%s/%s/%s", t.Namespace, t.Deployment, t.Pod, t.Selector),
			func() (*diagnosis.Snapshot, error) { return v.Cluster.Snapshot(t, at), nil })
		r.Snapshot = snap
		r.Checks = append(r.Checks, pods(snap), warnings(snap, at))
	} else {
		r.Checks = append(r.Checks, Check{Name: Pods, Outcome: NotChecked, Detail: "no Kubernetes workload"},
			Check{Name: Warnings, Outcome: NotChecked, Detail: "no Kubernetes workload"})
	}
	switch {
	case svc == nil || svc.HealthURL == "" || v.Prober == nil:
		r.Checks = append(r.Checks, Check{Name: Health, Outcome: NotChecked, Detail: "no health probe"})
	default:
		p := v.Prober.Probe(ctx, ev, svc.HealthURL)
		c := Check{Name: Health, Outcome: Failed, Detail: "health probe " + p.Detail}
		if p.Outcome == probe.Up {
			c.Outcome = Passed
		}
		r.Checks = append(r.Checks, c)
	}
	switch {
	case svc == nil || svc.Queries.ErrorRatio == "" || v.Ratios == nil:
		r.Checks = append(r.Checks, Check{Name: Errors, Outcome: NotChecked, Detail: "no error_ratio query"})
	default:
		f, floor := v.Ratios.ErrorRatio(ctx, ev, svc), v.Ratios.ImpactFloor(svc)
		switch {
		case !f.Known:
			r.Checks = append(r.Checks, Check{Name: Errors, Outcome: NotChecked, Detail: f.Note})
		case f.Value < floor:
			r.Checks = append(r.Checks, Check{Name: Errors, Outcome: Passed, Detail: fmt.Sprintf("%s < %s", pct(f.Value), pct(floor))})
		default:
			r.Checks = append(r.Checks, Check{Name: Errors, Outcome: Failed, Detail: fmt.Sprintf("error ratio %s ≥ %s", pct(f.Value), pct(floor))})
		}
	}
	return r
}

func pct(r float64) string { return fmt.Sprintf("%.3g%%", r*100) }

// pods: Running and Ready, and for a Deployment available = desired.
func pods(s *diagnosis.Snapshot) Check {
	ready := 0
	for _, p := range s.Pods {
		if p.Ready && p.Phase == "Running" {
			ready++
		}
	}
	want := s.PodsTotal
	if d := s.Deployment; d != nil {
		want = int(d.Desired)
		if d.Available < d.Desired {
			return Check{Name: Pods, Outcome: Failed, Detail: fmt.Sprintf("%d/%d pods ready (%d available)", ready, want, d.Available)}
		}
	}
	if s.Deployment == nil && s.PodsTotal == 0 {
		detail := "no pods found"
		if len(s.Partial) > 0 {
			detail = s.Partial[0]
			return Check{Name: Pods, Outcome: NotChecked, Detail: detail}
		}
		return Check{Name: Pods, Outcome: Failed, Detail: detail}
	}
	// Pods beyond the snapshot's cap are not listed; the listed are the
	// most broken first, so all listed ready means the rest are too.
	if ready < len(s.Pods) || ready < want && len(s.Pods) == s.PodsTotal {
		return Check{Name: Pods, Outcome: Failed, Detail: fmt.Sprintf("%d/%d pods ready", ready, max(want, s.PodsTotal))}
	}
	return Check{Name: Pods, Outcome: Passed, Detail: fmt.Sprintf("%d/%d pods ready", max(want, ready), max(want, s.PodsTotal))}
}

// warnings: no Warning event for the workload in the last WarningWindow.
func warnings(s *diagnosis.Snapshot, at time.Time) Check {
	n, last := 0, ""
	for _, e := range s.Events {
		if !e.Time.Before(at.Add(-WarningWindow)) {
			n++
			if last == "" {
				last = e.Object + " " + e.Reason
			}
		}
	}
	if n > 0 {
		return Check{Name: Warnings, Outcome: Failed, Detail: fmt.Sprintf("%d new Warning events in the last 2m (%s)", n, last)}
	}
	return Check{Name: Warnings, Outcome: Passed, Detail: "none in the last 2m"}
}
