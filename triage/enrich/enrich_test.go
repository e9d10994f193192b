package enrich

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/probe"
	"github.com/amtriage/amtriage/triage/signal"

	"github.com/amtriage/amtriage/internal/testutil"
)

var alertStart = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

// fakeCluster returns a crash-looping deployment rolled out 12 minutes
// before the alert, and counts lookups.
type fakeCluster struct{ calls int }

func (f *fakeCluster) SnapshotFor(_ context.Context, _ *signal.Evaluation, labels map[string]string, svc *rules.Service) (*diagnosis.Snapshot, bool) {
	f.calls++
	if svc == nil && labels["namespace"] == "" {
		return nil, false
	}
	return &diagnosis.Snapshot{
		Namespace: "shop", Workload: "deployment/api",
		Deployment: &diagnosis.Deployment{Name: "api", Desired: 3, Updated: 3},
		Pods:       []diagnosis.Pod{{Name: "api-2-a", Phase: "Running", Reason: "CrashLoopBackOff", Restarts: 4, ReplicaSet: "api-2"}},
		PodsTotal:  1,
		Rollouts: []diagnosis.Rollout{
			{Revision: 2, ReplicaSet: "api-2", Created: alertStart.Add(-12 * time.Minute), Images: []string{"shop/api:1.5.0"}},
			{Revision: 1, ReplicaSet: "api-1", Created: alertStart.Add(-72 * time.Hour), Images: []string{"shop/api:1.4.2"}},
		},
	}, true
}

func server(t *testing.T, code int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func refusedURL(t *testing.T) string {
	t.Helper()
	return "http://" + testutil.FreeAddr(t) + "/health"
}

func TestDiagnose(t *testing.T) {
	up, down := server(t, http.StatusOK), refusedURL(t)
	cfgWith := func(dbURL string) *rules.Config {
		return &rules.Config{
			Kubernetes: rules.KubernetesConfig{RolloutWindow: rules.Duration(30 * time.Minute)},
			Services: []rules.Service{
				{Name: "api", Namespace: "shop", Deployment: "api", HealthURL: up, DependsOn: []string{"postgres"}},
				{Name: "postgres", HealthURL: dbURL},
			},
		}
	}
	alert := &template.Alert{Labels: template.KV{"alertname": "HighErrorRate", "namespace": "shop"}, StartsAt: alertStart}
	prober := probe.New(probe.Options{Timeout: time.Second})
	tests := []struct {
		name     string
		e        func() *Enricher
		want     diagnosis.Category
		command  string
		evidence string
	}{
		{"crash loop after a rollout: roll back",
			func() *Enricher {
				c := cfgWith(up)
				return &Enricher{Config: c, Cluster: &fakeCluster{}, Prober: prober}
			},
			diagnosis.ConfigOrDeployment, "kubectl rollout undo deployment/api -n shop --to-revision=1", ""},
		{"the database is down: infrastructure, not the rollout",
			func() *Enricher {
				c := cfgWith(down)
				return &Enricher{Config: c, Cluster: &fakeCluster{}, Prober: prober}
			},
			diagnosis.Infrastructure, "", "postgres"},
		{"no cluster: skipped with the reason",
			func() *Enricher {
				return &Enricher{Config: cfgWith(up), SkipReason: "kubernetes.enabled is false", Prober: prober}
			},
			diagnosis.Skipped, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e()
			ev := signal.NewEvaluation(alertStart.Add(time.Minute))
			d := e.Diagnose(context.Background(), ev, alert, &e.Config.Services[0], severity.Decision{})
			if d.Category != tt.want || d.Command != tt.command {
				t.Fatalf("Diagnose = %s %q (%s), want %s %q", d.Category, d.Command, d.Summary, tt.want, tt.command)
			}
			if tt.evidence != "" && !strings.Contains(strings.Join(d.Evidence, "\n")+d.Summary, tt.evidence) {
				t.Errorf("evidence %q lacks %q", d.Evidence, tt.evidence)
			}
			if tt.want == diagnosis.Skipped && !strings.Contains(d.Summary, "kubernetes.enabled is false") {
				t.Errorf("summary %q does not state the reason", d.Summary)
			}
		})
	}
}

func TestDiagnoseWithoutWorkloadSaysWhy(t *testing.T) {
	e := &Enricher{Config: &rules.Config{}, Cluster: &fakeCluster{}}
	d := e.Diagnose(context.Background(), signal.NewEvaluation(alertStart), &template.Alert{Labels: template.KV{"alertname": "X"}}, nil, severity.Decision{})
	if d.Category != diagnosis.Skipped || !strings.Contains(d.Summary, "no workload") {
		t.Fatalf("Diagnose = %s: %s", d.Category, d.Summary)
	}
}
