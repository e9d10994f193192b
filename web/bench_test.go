package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/view"
)

// realisticIncidents are n open incidents as the pipeline's Board gives
// them: no alerts, a diagnosis with a snapshot, reasons of real length.
func realisticIncidents(n int) []view.Incident {
	out := make([]view.Incident, 0, n)
	for i := range n {
		svc := fmt.Sprintf("service-%02d", i%40)
		v := view.Incident{
			ID: fmt.Sprintf("%s-%016x", svc, uint64(i)*0x9e3779b97f4a7c15), Service: svc,
			Title:  fmt.Sprintf("INCIDENT: %s - %s error ratio above 5%% on /api/v1/orders (pod %s-7d9f8b6c5-x%03d)", svc, svc, svc, i),
			Status: "firing", Severity: severity.Level(1 + i%4), PeakSeverity: severity.Level(1 + i%4), Rule: 1 + i%13,
			Reasons: []string{
				fmt.Sprintf("error ratio 12.4%% > 5%% for 5m (prometheus: sum(rate(http_requests_total{service=%q,code=~\"5..\"}[5m])))", svc),
				"customer-facing service (profile)", "no data loss reported (annotation)",
			},
			Started: now.Add(-time.Duration(i+1) * time.Minute), AlertsFiring: 1 + i%5, AlertsTotal: 1 + i%7,
			LastEvaluated: now.Add(-30 * time.Second), State: incident.StateOpen,
			Diagnosis: &diagnosis.Diagnosis{
				Category: diagnosis.ConfigOrDeployment, Summary: "CrashLoopBackOff after rollout to revision 5",
				Evidence: []string{"3/3 pods CrashLoopBackOff", "rollout 12m ago: shop/api:1.4.2 → 1.5.0"},
				Command:  "kubectl -n shop rollout undo deployment/" + svc + " --to-revision=4",
				Snapshot: &diagnosis.Snapshot{Namespace: "shop", Workload: "deployment/" + svc, PodsTotal: 3,
					Pods: []diagnosis.Pod{{Name: svc + "-7d9f8b6c5-x1", Phase: "Running", Reason: "CrashLoopBackOff", Restarts: 7}}},
			},
		}
		if i%3 == 0 {
			v.AcknowledgedAt, v.AcknowledgedBy = now.Add(-time.Minute), "U024BE7LH (alice)"
		}
		out = append(out, v)
	}
	return out
}

func benchBoard(b *testing.B, n int) {
	h := newUI(b, &fakeSource{incs: realisticIncidents(n)}).Handler()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET / = %d", rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
	if ns := b.Elapsed().Nanoseconds() / int64(b.N); ns > int64(100*time.Millisecond) {
		b.Errorf("GET / with %d incidents takes %v, want under 100ms", n, time.Duration(ns))
	}
}

// BenchmarkBoard renders GET / with 1,000 open incidents: 200 rows shown
// (the page size), all 1,000 filtered, sorted and counted.
func BenchmarkBoard(b *testing.B) {
	b.Run("incidents=1000", func(b *testing.B) { benchBoard(b, 1000) })
	b.Run("incidents=10", func(b *testing.B) { benchBoard(b, 10) })
}

// BenchmarkBoardJSONBaseline is the same-run baseline: the same 1,000
// incidents encoded as GET /api/incidents encodes them (one json.Marshal
// each).
func BenchmarkBoardJSONBaseline(b *testing.B) {
	incs := realisticIncidents(1000)
	var size int
	b.ReportAllocs()
	for b.Loop() {
		size = 0
		for i := range incs {
			enc, err := json.Marshal(incs[i])
			if err != nil {
				b.Fatal(err)
			}
			size += len(enc) + 1
		}
	}
	b.ReportMetric(float64(size), "bytes/page")
}
