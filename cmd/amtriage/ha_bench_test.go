package main

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
)

// BenchmarkFailover: two replicas on one PostgreSQL; ten times, the leader
// is killed with SIGKILL and an alert is posted to the survivor at once.
// Measured: from the kill to the survivor's trigger of that alert reaching
// PagerDuty (the lease's TTL, the standby's poll, loading the state and the
// first delivery). Reports the median and the maximum.
func BenchmarkFailover(b *testing.B) {
	const runs = 10
	e := newHAEnv(b, pgtest.WithoutFsync())
	rs := []*replica{e.newReplica(b, "a", e.dsn).start(b), e.newReplica(b, "b", e.dsn).start(b)}
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range runs {
			lead := waitLeader(b, 30*time.Second, rs...)
			survivor := rs[0]
			if lead == rs[0] {
				survivor = rs[1]
			}
			svc := fmt.Sprintf("failover-%d-%d", len(took), i)
			killed := time.Now()
			if err := lead.kill(syscall.SIGKILL); err == nil {
				b.Fatal("SIGKILL: clean exit")
			}
			if code, err := post(b.Context(), survivor.url("/webhook"), "", sev1Webhook(svc)); err != nil || code != 200 {
				b.Fatalf("post to the survivor: %d %v", code, err)
			}
			var at time.Time
			if !waitUntil(30*time.Second, func() bool {
				for _, d := range e.log.by(survivor.name) {
					if d.Receiver == "pagerduty" && d.Action == "trigger" && strings.HasPrefix(d.DedupKey, svc+"-") {
						at = d.At
						return true
					}
				}
				return false
			}) {
				b.Fatalf("run %d: the survivor did not page %s within 30s", i, svc)
			}
			took = append(took, at.Sub(killed))
			lead.start(b) // back as the standby for the next run
		}
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("kill → survivor's first delivery over %d runs: %v", len(took), took)
}
