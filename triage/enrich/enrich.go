// Package enrich gathers what the diagnosis needs for one alert: the
// Kubernetes snapshot, the service's and its dependencies' health probes,
// and hands them to the pure diagnosis rules.
package enrich

import (
	"context"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/probe"
	"github.com/amtriage/amtriage/triage/signal"
)

// Snapshotter gives the Kubernetes snapshot of an alert's workload, from
// caches; false when the alert names no workload.
type Snapshotter interface {
	SnapshotFor(ctx context.Context, ev *signal.Evaluation, labels map[string]string, svc *rules.Service) (*diagnosis.Snapshot, bool)
}

// Enricher implements triage.Enricher.
type Enricher struct {
	Config *rules.Config
	// Cluster is nil without Kubernetes; SkipReason then says why.
	Cluster    Snapshotter
	SkipReason string
	Prober     *probe.Prober // nil: no probes
}

// Diagnose builds the diagnosis of one alert at the evaluation's instant.
func (e *Enricher) Diagnose(ctx context.Context, ev *signal.Evaluation, a *template.Alert, svc *rules.Service, d severity.Decision) *diagnosis.Diagnosis {
	in := diagnosis.Input{
		At:            ev.Time(),
		AlertStart:    a.StartsAt,
		RolloutWindow: time.Duration(e.Config.Kubernetes.RolloutWindow),
		Labels:        a.Labels,
		Annotations:   a.Annotations,
		Signals:       d.Signals,
		SkipReason:    e.SkipReason,
	}
	if e.Cluster != nil {
		if snap, ok := e.Cluster.SnapshotFor(ctx, ev, a.Labels, svc); ok {
			in.Snapshot = snap
		} else {
			in.SkipReason = "no workload to look at: the profile names no namespace and deployment or selector, and the alert has no namespace label"
		}
	}
	if e.Prober != nil && svc != nil {
		if svc.HealthURL != "" {
			r := e.Prober.Probe(ctx, ev, svc.HealthURL)
			in.Service = &diagnosis.Probe{Target: svc.Name, Outcome: string(r.Outcome), Detail: r.Detail}
		}
		in.Dependencies = e.Prober.Dependencies(ctx, ev, e.Config, svc)
	}
	out := diagnosis.Diagnose(in)
	return &out
}
