package triage

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/webhook"
)

// BenchmarkDurableIngest is webhook intake on each store, in one run (README
// "Replicas on PostgreSQL"): 64 concurrent keep-alive connections post 10-alert
// payloads, one request in five a new notification (as BenchmarkIntake).
//
//   - bare: reads and decodes the body and answers 200, storing nothing;
//   - bbolt: the whole daemon on bbolt (group commit, fdatasync);
//   - postgres: the whole daemon on PostgreSQL with fsync on, so a 200
//     follows a durable commit;
//   - postgres-2replicas: two daemons on one database, requests alternating
//     between them (the leader also processes what both take).
//
// Each reports req/s, p50 and p99 latency, inbox requests per commit and
// the mean commit time; the later ones also their rate as a fraction of
// bare and of bbolt measured before them in the same run. One iteration is
// one request.
func BenchmarkDurableIngest(b *testing.B) {
	// As `amtriage serve` does; the bare handler runs with the same setting.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	ReserveProcForSyncs()
	pg := pgtest.Start(b) // fsync on: durable commits are what is measured
	rates := map[string]float64{}
	cases := []struct {
		name    string
		targets func(b *testing.B) ([]string, []*Daemon)
	}{
		{"bare", func(b *testing.B) ([]string, []*Daemon) { return []string{bareIngestServer(b)}, nil }},
		{"bbolt", func(b *testing.B) ([]string, []*Daemon) {
			cfg := rules.Default()
			cfg.Store.Path = b.TempDir()
			d, url := servedDaemon(b, cfg)
			return []string{url}, []*Daemon{d}
		}},
		{"postgres", func(b *testing.B) ([]string, []*Daemon) {
			d, url := servedDaemon(b, pgBenchConfig(b, pg.NewDatabase(b)))
			waitLeader(b, d)
			return []string{url}, []*Daemon{d}
		}},
		{"postgres-2replicas", func(b *testing.B) ([]string, []*Daemon) {
			dsn := pg.NewDatabase(b)
			d1, url1 := servedDaemon(b, pgBenchConfig(b, dsn))
			d2, url2 := servedDaemon(b, pgBenchConfig(b, dsn))
			waitLeader(b, d1, d2)
			return []string{url1, url2}, []*Daemon{d1, d2}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			const conns, warm = 64, 256
			urls, daemons := c.targets(b)
			payloads := ingestPayloads(b.N + warm)
			run := newIngestLoad(conns, urls, payloads)
			defer run.close()
			run.post(b, warm) // open the connections, fill the statement caches
			before := inboxCommits(b, daemons)
			b.ResetTimer()
			start := time.Now()
			lat := run.post(b, b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			rate := float64(b.N) / elapsed.Seconds()
			rates[c.name] = rate
			b.ReportMetric(rate, "req/s")
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			if after := inboxCommits(b, daemons); after.commits > before.commits {
				n := after.commits - before.commits
				b.ReportMetric((after.requests-before.requests)/n, "req/commit")
				b.ReportMetric((after.seconds-before.seconds)/n*1000, "commit-ms")
			}
			for _, base := range []string{"bare", "bbolt"} {
				if r, ok := rates[base]; ok && base != c.name {
					b.ReportMetric(rate/r, "x"+base)
				}
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ingestPayloads is n requests' bodies: 10-alert notifications of 256
// services, a fifth of them distinct, so one request in five is new and the
// others are redeliveries, as Alertmanager resends its groups.
func ingestPayloads(n int) [][]byte {
	distinct := make([][]byte, max(n/5, 1))
	for i := range distinct {
		distinct[i] = benchPayload(i, 10, "svc-"+strconv.Itoa(i%256))
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = distinct[i%len(distinct)]
	}
	return out
}

// bareIngestServer reads and decodes the body as the daemon's intake does
// and answers 200 without storing it: the baseline.
func bareIngestServer(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			_, err = webhook.DecodeMessage(body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"stored","alerts":10}`+"\n")
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/webhook"
}

func pgBenchConfig(b *testing.B, dsn string) *rules.Config {
	cfg := rules.Default()
	cfg.Store.Path = b.TempDir()
	cfg.Store.Postgres = &rules.PostgresConfig{DSN: rules.Secret(dsn)}
	return cfg
}

// servedDaemon runs a whole daemon (Serve: intake, pipeline, a discarding
// receiver) until the benchmark ends and returns its webhook URL once it
// is ready.
func servedDaemon(b *testing.B, cfg *rules.Config) (*Daemon, string) {
	b.Helper()
	d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&discardNotifier{}}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	waitUntil(b, "the daemon is ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d, base + "/webhook"
}

// waitLeader waits until one of ds leads, so that the measurement does not
// include the election.
func waitLeader(b *testing.B, ds ...*Daemon) {
	waitUntil(b, "a leader", func() bool {
		return slices.ContainsFunc(ds, func(d *Daemon) bool { return d.pipeline.Leading() })
	})
}

func waitUntil(b *testing.B, what string, ok func() bool) {
	b.Helper()
	for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
	}
}

// ingestLoad posts payloads from conns goroutines sharing keep-alive
// connections; request i goes to urls[i%len(urls)].
type ingestLoad struct {
	conns    int
	urls     []string
	payloads [][]byte
	next     int
	client   *http.Client
}

func newIngestLoad(conns int, urls []string, payloads [][]byte) *ingestLoad {
	return &ingestLoad{conns: conns, urls: urls, payloads: payloads,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}}
}

func (l *ingestLoad) close() { l.client.CloseIdleConnections() }

// post sends the next n payloads and returns their latencies, sorted. A
// request that does not get a 200 fails the benchmark: a 200 is the
// daemon's word that the body is committed.
func (l *ingestLoad) post(b *testing.B, n int) []time.Duration {
	b.Helper()
	first := l.next
	l.next += n
	var next atomic.Int64
	lat := make([][]time.Duration, l.conns)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for c := range l.conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1)-1) + first
				if i >= first+n {
					return
				}
				t0 := time.Now()
				resp, err := l.client.Post(l.urls[i%len(l.urls)], "application/json", bytes.NewReader(l.payloads[i]))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = &statusError{resp.StatusCode}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed, the first with: %v", f, n, firstErr.Load())
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return all
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.code) }

// commitTotals are the inbox group commits of some daemons so far.
type commitTotals struct{ commits, requests, seconds float64 }

func inboxCommits(b *testing.B, ds []*Daemon) commitTotals {
	b.Helper()
	var t commitTotals
	for _, d := range ds {
		mfs, err := d.registry.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "amtriage_inbox_commit_batch_size":
				for _, m := range mf.GetMetric() {
					t.commits += float64(m.GetHistogram().GetSampleCount())
					t.requests += m.GetHistogram().GetSampleSum()
				}
			case "amtriage_store_commit_duration_seconds":
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "file" && l.GetValue() == "inbox" {
							t.seconds += m.GetHistogram().GetSampleSum()
						}
					}
				}
			}
		}
	}
	return t
}
