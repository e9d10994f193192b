package triage

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/incident"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/notify/pagerduty"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
)

// BenchmarkHungPagerDuty: 20 Sev 1 incidents queued for PagerDuty while it
// hangs, delivered from the bbolt outbox by the PagerDuty receiver; the
// time until the last incident's first page is accepted, with one incident
// at a time (the old deliverer) and with the default concurrency.
//
//   - hung-30s: every request in PagerDuty's first 30 s hangs until the
//     client gives up (the default 30 s attempt, the default client).
//   - 20-hung-requests: PagerDuty's first 20 requests hang, each until the
//     attempt's deadline (1.5 s here, to keep the run short): the issue's
//     case of one hung request per incident, paid one after another by a
//     deliverer that sends one at a time.
//
// Run: go test -run '^$' -bench BenchmarkHungPagerDuty -benchtime 1x ./triage
func BenchmarkHungPagerDuty(b *testing.B) {
	scenarios := []struct {
		name    string
		hang    func(*fakepd.Server)
		timeout time.Duration
		client  *http.Client // nil: the receiver's default
	}{
		{"hung-30s", func(s *fakepd.Server) { s.HangFor(30 * time.Second) }, 30 * time.Second, nil},
		{"20-hung-requests", func(s *fakepd.Server) { s.Fail(fakepd.Fault{Hang: true, Times: 20}) }, 1500 * time.Millisecond, &http.Client{}},
	}
	for _, sc := range scenarios {
		for _, conc := range []int{1, notify.DefaultConcurrency} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", sc.name, conc), func(b *testing.B) {
				var total time.Duration
				for range b.N {
					total += lastFirstPage(b, 20, conc, sc.timeout, sc.client, sc.hang)
				}
				b.ReportMetric(total.Seconds()/float64(b.N), "last-first-page-s")
				b.ReportMetric(total.Seconds()/float64(b.N)/sc.timeout.Seconds(), "timeouts")
			})
		}
	}
}

// lastFirstPage queues n Sev 1 incidents, hangs PagerDuty, starts the
// deliverer and returns when every incident has a trigger accepted.
func lastFirstPage(b *testing.B, n, concurrency int, timeout time.Duration, client *http.Client, hang func(*fakepd.Server)) time.Duration {
	b.Helper()
	fake := fakepd.New()
	defer fake.Close()
	fake.SetRateLimit(0, 0)
	s, err := boltstore.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	ch := &incident.Changes{}
	for i := range n {
		svc := fmt.Sprintf("svc-%02d", i)
		ch.Events = append(ch.Events, incident.Event{Kind: incident.Opened, At: now, Incident: incident.Incident{
			ID: svc + "-0123456789ab", Service: svc, Title: "INCIDENT: " + svc, Status: incident.Firing,
			Severity: 1, PeakSeverity: 1, StartedAt: now}})
	}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{ch}, Receivers: []string{"pagerduty"}}); err != nil {
		b.Fatal(err)
	}
	pd, err := pagerduty.New(pagerduty.Config{URL: fake.URL, RoutingKey: rules.Secret("benchPDroutingKey0123456789abcde"), RateLimit: -1, Client: client})
	if err != nil {
		b.Fatal(err)
	}
	d := &notify.Deliverer{Queue: s, Notifier: pd, Wake: make(chan struct{}), Log: slog.New(slog.DiscardHandler),
		Metrics: notify.NewMetrics(prometheus.NewRegistry()), Concurrency: concurrency, Timeout: timeout}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	hang(fake)
	start := time.Now()
	go func() { d.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	deadline := start.Add(25 * timeout * 2)
	for {
		paged := map[string]bool{}
		for _, e := range fake.Events() {
			paged[e.DedupKey] = true
		}
		if len(paged) == n {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d incidents paged after %v", len(paged), n, time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
