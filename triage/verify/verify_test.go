package verify

import (
	"context"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/probe"
	"github.com/amtriage/amtriage/triage/signal"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeCluster struct {
	snap  *diagnosis.Snapshot
	calls int
}

func (f *fakeCluster) Snapshot(kube.Target, time.Time) *diagnosis.Snapshot { f.calls++; return f.snap }

type fakeProber struct{ outcome probe.Outcome }

func (f fakeProber) Probe(context.Context, *signal.Evaluation, string) probe.Result {
	return probe.Result{Outcome: f.outcome, Detail: map[probe.Outcome]string{probe.Up: "HTTP 200", probe.Crashed: "HTTP 503"}[f.outcome]}
}

type fakeRatios struct{ f severity.Float }

func (f fakeRatios) ErrorRatio(context.Context, *signal.Evaluation, *rules.Service) severity.Float {
	return f.f
}
func (fakeRatios) ImpactFloor(*rules.Service) float64 { return 0.01 }

func readyPods(ready, desired int) *diagnosis.Snapshot {
	s := &diagnosis.Snapshot{Namespace: "shop", Deployment: &diagnosis.Deployment{Name: "api", Desired: int32(desired), Available: int32(ready)}, PodsTotal: desired}
	for i := range desired {
		s.Pods = append(s.Pods, diagnosis.Pod{Name: "api-" + string(rune('a'+i)), Phase: "Running", Ready: i < ready})
	}
	return s
}

func TestVerify(t *testing.T) {
	svc := &rules.Service{Name: "api", Namespace: "shop", Deployment: "api", HealthURL: "http://api/health",
		Queries: rules.ServiceQueries{ErrorRatio: "x"}}
	ok := severity.Float{Known: true, Value: 0}
	tests := []struct {
		name     string
		v        *Verifier
		svc      *rules.Service
		can      bool
		verified bool
		why      string
		summary  string
	}{
		{name: "all pass", v: &Verifier{Cluster: &fakeCluster{snap: readyPods(3, 3)}, Prober: fakeProber{probe.Up}, Ratios: fakeRatios{ok}},
			svc: svc, can: true, verified: true,
			summary: "pods: passed (3/3 pods ready); warning events: passed (none in the last 2m); health: passed (health probe HTTP 200); error ratio: passed (0% < 1%)"},
		{name: "pods not ready", v: &Verifier{Cluster: &fakeCluster{snap: readyPods(1, 3)}, Prober: fakeProber{probe.Up}, Ratios: fakeRatios{ok}},
			svc: svc, can: true, why: "1/3 pods ready (1 available)"},
		{name: "health 503 and errors above the floor", v: &Verifier{Prober: fakeProber{probe.Crashed}, Ratios: fakeRatios{severity.Float{Known: true, Value: 0.2}}},
			svc: svc, can: true, why: "health probe HTTP 503; error ratio 20% ≥ 1%"},
		{name: "a new Warning event", v: &Verifier{Cluster: &fakeCluster{snap: func() *diagnosis.Snapshot {
			s := readyPods(3, 3)
			s.Events = []diagnosis.Event{{Time: t0.Add(-time.Minute), Object: "Pod/api-a", Reason: "BackOff"}}
			return s
		}()}}, svc: svc, can: true, why: "1 new Warning events in the last 2m (Pod/api-a BackOff)"},
		{name: "an old Warning event does not count", v: &Verifier{Cluster: &fakeCluster{snap: func() *diagnosis.Snapshot {
			s := readyPods(3, 3)
			s.Events = []diagnosis.Event{{Time: t0.Add(-3 * time.Minute), Object: "Pod/api-a", Reason: "BackOff"}}
			return s
		}()}}, svc: svc, can: true, verified: true},
		{name: "Prometheus unknown is not checked, never passed", v: &Verifier{Ratios: fakeRatios{severity.Float{Note: "timed out"}}},
			svc: svc, can: true, why: "no check could run: pods: not checked (no Kubernetes workload); warning events: not checked (no Kubernetes workload); health: not checked (no health probe); error ratio: not checked (timed out)"},
		{name: "no source at all", v: &Verifier{}, svc: svc, can: false},
		{name: "no profile", v: &Verifier{Cluster: &fakeCluster{}, Prober: fakeProber{probe.Up}, Ratios: fakeRatios{ok}}, can: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.Can(tt.svc, nil); got != tt.can {
				t.Fatalf("Can = %v, want %v", got, tt.can)
			}
			if !tt.can {
				return
			}
			r := tt.v.Verify(context.Background(), signal.NewEvaluation(t0), tt.svc, nil)
			if r.Verified() != tt.verified {
				t.Errorf("verified = %v, want %v: %s", r.Verified(), tt.verified, r.Summary())
			}
			if !tt.verified && r.Why() != tt.why {
				t.Errorf("why = %q, want %q", r.Why(), tt.why)
			}
			if tt.summary != "" && r.Summary() != tt.summary {
				t.Errorf("summary = %q, want %q", r.Summary(), tt.summary)
			}
		})
	}
}

// TestVerifyMemoised: one evaluation reads a workload's snapshot once for
// any number of incidents.
func TestVerifyMemoised(t *testing.T) {
	c := &fakeCluster{snap: readyPods(3, 3)}
	v := &Verifier{Cluster: c}
	svc := &rules.Service{Name: "api", Namespace: "shop", Deployment: "api"}
	ev := signal.NewEvaluation(t0)
	for range 100 {
		v.Verify(context.Background(), ev, svc, nil)
	}
	if c.calls != 1 {
		t.Errorf("snapshots read = %d, want 1", c.calls)
	}
}
