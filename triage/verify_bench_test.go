package triage

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/probe"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/triage/verify"
)

// Counting sources, memoised per evaluation as the real ones are.
type countingCluster struct{ reads atomic.Int64 }

func (c *countingCluster) Snapshot(t kube.Target, _ time.Time) *diagnosis.Snapshot {
	c.reads.Add(1)
	return &diagnosis.Snapshot{Namespace: t.Namespace, Deployment: &diagnosis.Deployment{Name: t.Deployment, Desired: 3, Available: 1}, PodsTotal: 3,
		Pods: []diagnosis.Pod{{Name: "a", Phase: "Running", Ready: true}, {Name: "b", Phase: "Running"}, {Name: "c", Phase: "Running"}}}
}

type countingProber struct{ probes atomic.Int64 }

func (c *countingProber) Probe(_ context.Context, ev *signal.Evaluation, url string) probe.Result {
	r, _ := signal.Memo(ev, "probe\x00"+url, func() (probe.Result, error) {
		c.probes.Add(1)
		return probe.Result{Outcome: probe.Up, Detail: "HTTP 200", Status: 200}, nil
	})
	return r
}

type countingRatios struct{ queries atomic.Int64 }

func (c *countingRatios) ErrorRatio(_ context.Context, ev *signal.Evaluation, svc *rules.Service) severity.Float {
	v, _ := signal.Memo(ev, "ratio\x00"+svc.Queries.ErrorRatio, func() (float64, error) {
		c.queries.Add(1)
		return 0.2, nil
	})
	return severity.Float{Known: true, Value: v, Source: "prometheus"}
}

func (c *countingRatios) ImpactFloor(*rules.Service) float64 { return 0.01 }

// BenchmarkVerifyRound: one verification round over 1,000 incidents in
// verifying (1,000 services in 50 groups sharing a workload, a health URL
// and an error-ratio query), their checks failing and unchanged from the
// previous round: CPU per round, and what the sources are asked per round.
func BenchmarkVerifyRound(b *testing.B) {
	const incidents, groups = 1000, 50
	cfg := rules.Default()
	for i := range incidents {
		g := i % groups
		cfg.Services = append(cfg.Services, rules.Service{Name: fmt.Sprintf("svc-%d", i),
			Namespace: fmt.Sprintf("ns-%d", g), Deployment: "api", HealthURL: fmt.Sprintf("http://api.ns-%d/health", g),
			Queries: rules.ServiceQueries{ErrorRatio: fmt.Sprintf(`sum(rate(errors{group="%d"}[5m]))`, g)}})
	}
	s, err := boltstore.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cluster, prober, ratios := &countingCluster{}, &countingProber{}, &countingRatios{}
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	p, err := NewPipeline(PipelineOptions{Store: s, Triager: &Triager{Config: cfg}, Log: slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(prometheus.NewRegistry()), Receivers: []string{"pager"}, Retention: 168 * time.Hour,
		VerifyTimeout: 7 * 24 * time.Hour, Now: func() time.Time { return now },
		Verifier: &verify.Verifier{Cluster: cluster, Prober: prober, Ratios: ratios}})
	if err != nil {
		b.Fatal(err)
	}
	fire, end := incident.Batch{At: now}, incident.Batch{At: now.Add(time.Minute)}
	for i := range incidents {
		a := incident.Alert{Key: fmt.Sprintf("k%d", i), Name: "HighErrorRate", Status: incident.Firing, StartsAt: now,
			Labels: map[string]string{"service": fmt.Sprintf("svc-%d", i)}, Decision: severity.Decision{Severity: 2}}
		fire.Observations = append(fire.Observations, incident.Observation{Service: a.Labels["service"], Alert: a, Decision: a.Decision})
		a.Status, a.EndsAt = incident.Resolved, now.Add(time.Minute)
		end.Observations = append(end.Observations, incident.Observation{Service: a.Labels["service"], Alert: a, Decision: a.Decision})
	}
	p.mu.Lock()
	p.book.Apply(fire)
	p.book.Apply(end)
	p.mu.Unlock()
	if got := len(p.book.Verifying()); got != incidents {
		b.Fatalf("verifying = %d", got)
	}
	ctx := context.Background()
	round := func() {
		now = now.Add(30 * time.Second)
		if err := p.Verify(ctx); err != nil {
			b.Fatal(err)
		}
	}
	round() // the first round announces and records every check
	cluster.reads.Store(0)
	prober.probes.Store(0)
	ratios.queries.Store(0)
	rounds := 0
	for b.Loop() {
		round()
		rounds++
	}
	if got := len(p.book.Verifying()); got != incidents {
		b.Fatalf("verifying = %d after the rounds", got)
	}
	b.ReportMetric(float64(cluster.reads.Load())/float64(rounds), "snapshots/round")
	b.ReportMetric(float64(prober.probes.Load())/float64(rounds), "probes/round")
	b.ReportMetric(float64(ratios.queries.Load())/float64(rounds), "queries/round")
}
