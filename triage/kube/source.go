package kube

import (
	"context"
	"errors"
	"slices"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"

	"github.com/amtriage/amtriage/internal/clip"
)

// SourceName is the name of the Kubernetes signal source.
const SourceName = "kubernetes"

var _ signal.Source = (*Cluster)(nil)

var errNotSynced = errors.New("kubernetes caches not synced")

// Name is the signal source's name, "kubernetes".
func (c *Cluster) Name() string { return SourceName }

// Signals gives the reachable signal of the alert's workload (see
// Reachable); the others stay unknown. The snapshot is read once per
// evaluation and workload, however many alerts share it.
func (c *Cluster) Signals(_ context.Context, ev *signal.Evaluation, a *template.Alert, svc *rules.Service) (severity.Signals, error) {
	var labels map[string]string
	if a != nil {
		labels = a.Labels
	}
	t, ok := TargetFor(labels, svc)
	if !ok {
		return severity.Signals{Reachable: severity.Bool{Note: "kubernetes: the alert names no namespace"}}, nil
	}
	s := c.snapshot(ev, t)
	if s.Deployment == nil && !c.Synced() {
		return severity.Signals{}, errNotSynced
	}
	return severity.Signals{Reachable: Reachable(s)}, nil
}

// SnapshotFor is the snapshot of the workload of an alert with these labels
// for the diagnosis, with error lines of a failing pod attached (or a
// Partial note saying why they are missing). It is read once per
// evaluation and workload. False: the alert names no workload.
func (c *Cluster) SnapshotFor(ctx context.Context, ev *signal.Evaluation, labels map[string]string, svc *rules.Service) (*diagnosis.Snapshot, bool) {
	t, ok := TargetFor(labels, svc)
	if !ok {
		return nil, false
	}
	s, _ := signal.Memo(ev, "kubernetes\x00diagnosis\x00"+t.key(), func() (*diagnosis.Snapshot, error) {
		snap := c.snapshot(ev, t)
		logs, err := c.Logs(ctx, snap)
		if err == nil && logs == nil {
			return snap, nil
		}
		// A copy: the memoised snapshot is shared with Signals callers.
		cp := *snap
		cp.Partial = slices.Clip(snap.Partial)
		if err != nil {
			cp.Partial = append(cp.Partial, clip.Bytes("pod logs not read: "+err.Error(), maxLogLine))
		} else {
			cp.Logs = logs
		}
		return &cp, nil
	})
	return s, true
}

// snapshot is Snapshot at the evaluation's instant, once per evaluation
// and target.
func (c *Cluster) snapshot(ev *signal.Evaluation, t Target) *diagnosis.Snapshot {
	s, _ := signal.Memo(ev, "kubernetes\x00snapshot\x00"+t.key(), func() (*diagnosis.Snapshot, error) {
		at := c.now()
		if ev != nil && !ev.At.IsZero() {
			at = ev.At
		}
		return c.Snapshot(t, at), nil
	})
	return s
}
