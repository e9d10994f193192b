package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/triage/probe"
	"github.com/amtriage/amtriage/triage/prom"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/webhook"
)

// benchPayload is an Alertmanager-shaped notification with n firing alerts of
// one service; seed varies fingerprints so payloads are distinct.
func benchPayload(seed, n int, service string) []byte {
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	alerts := make([]map[string]any, n)
	for i := range alerts {
		alerts[i] = map[string]any{
			"status": "firing",
			"labels": map[string]string{
				"alertname": "HighErrorRate", "service": service, "namespace": "shop", "cluster": "prod-eu1",
				"pod": fmt.Sprintf("%s-%d-%d", service, seed, i), "severity": "critical",
			},
			"annotations": map[string]string{
				"summary": "High 5xx error rate on " + service, "error_ratio": strconv.Itoa(5+i%60) + "%",
				"description": "5xx ratio is high over the last 5m.", "runbook_url": "https://runbooks.example.com/" + service,
			},
			"startsAt":     start.Add(time.Duration(seed) * time.Second).Format(time.RFC3339Nano),
			"endsAt":       "0001-01-01T00:00:00Z",
			"generatorURL": "http://prometheus:9090/graph?g0.expr=x",
			"fingerprint":  fmt.Sprintf("%016x", seed*100003+i),
		}
	}
	body, _ := json.Marshal(map[string]any{
		"version": "4", "status": "firing", "receiver": "amtriage", "externalURL": "http://alertmanager:9093",
		"groupKey":          fmt.Sprintf(`{}:{alertname="HighErrorRate", service="%s", shard="%d"}`, service, seed), // one group per payload: a complete notification resolves its group's absentees
		"groupLabels":       map[string]string{"alertname": "HighErrorRate", "service": service},
		"commonLabels":      map[string]string{"alertname": "HighErrorRate", "service": service},
		"commonAnnotations": map[string]string{}, "truncatedAlerts": 0, "alerts": alerts,
	})
	return body
}

type discardNotifier struct{ n atomic.Int64 }

func (d *discardNotifier) Name() string { return "discard" }
func (d *discardNotifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	d.n.Add(1)
	return false, nil
}

func benchDaemon(b *testing.B) (*Daemon, string, func()) {
	b.Helper()
	cfg := rules.Default()
	cfg.Store.Path = b.TempDir()
	d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&discardNotifier{}}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Serve(ctx, ln); close(done) }()
	return d, "http://" + ln.Addr().String(), func() { cancel(); <-done }
}

// load posts n requests from conns concurrent keep-alive connections and
// returns the rate and the 99th percentile latency.
func load(b *testing.B, url string, payloads [][]byte, n, conns int) (perSec float64, p99 time.Duration) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for c := 0; c < conns; c++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(payloads[i%int64(len(payloads))]))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed", f, n)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return float64(n) / elapsed.Seconds(), all[len(all)*99/100]
}

// BenchmarkIntake compares durable acknowledgements (validate, group-commit to
// bbolt with fsync) with a bare handler that only decodes the same JSON and
// answers 200, both at 64 concurrent connections with 10-alert payloads, in
// the same run. "daemon" is the whole daemon: the pipeline processes what is
// acknowledged meanwhile, on the same 2 cores. "ack-path" pauses processing
// to measure the acknowledgement path alone.
func BenchmarkIntake(b *testing.B) {
	// As `amtriage serve` does; the bare handler runs with the same setting.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	ReserveProcForSyncs()
	for _, mode := range []string{"daemon", "ack-path"} {
		b.Run(mode, func(b *testing.B) { benchIntake(b, mode == "ack-path") })
	}
}

func benchIntake(b *testing.B, pauseProcessing bool) {
	const conns, alerts = 64, 10
	payloads := make([][]byte, 4096) // one in five requests is a new notification
	for i := range payloads {
		payloads[i] = benchPayload(i, alerts, "svc-"+strconv.Itoa(i%256))
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	defer bare.Close()
	d, base, stop := benchDaemon(b)
	defer stop()
	if pauseProcessing {
		// A committer that does not wake the pipeline: acknowledged bodies
		// stay in the inbox, exactly as during a burst the pipeline trails.
		c := NewCommitter(d.store, d.api.Metrics, 4096, nil)
		defer c.Close()
		d.api.Committer = c
	}

	n := max(b.N, 20000)
	load(b, bare.URL, payloads, 500, conns) // warm both servers' connections
	load(b, base+"/webhook", payloads, 500, conns)
	b.ResetTimer()
	bareRate, bareP99 := load(b, bare.URL, payloads, n, conns)
	durRate, durP99 := load(b, base+"/webhook", payloads, n, conns)
	b.StopTimer()
	b.ReportMetric(bareRate, "bare-req/s")
	b.ReportMetric(durRate, "durable-req/s")
	b.ReportMetric(durRate/bareRate, "durable/bare")
	b.ReportMetric(float64(bareP99.Microseconds())/1000, "bare-p99-ms")
	b.ReportMetric(float64(durP99.Microseconds())/1000, "durable-p99-ms")
	if batches, requests := histogramCount(b, d, "amtriage_inbox_commit_batch_size"); batches > 0 {
		b.ReportMetric(requests/batches, "requests/commit")
	}
}

// histogramCount returns a histogram's observation count and sum.
func histogramCount(b *testing.B, d *Daemon, name string) (count, sum float64) {
	mfs, err := d.registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				count += float64(m.GetHistogram().GetSampleCount())
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return count, sum
}

// BenchmarkClassify measures triage of single alerts (signals from
// annotations and labels, profile matching, the decision tree).
func BenchmarkClassify(b *testing.B) {
	cfg, err := rules.Parse([]byte(`
services:
  - name: api
    match: ['service="api"', 'namespace="shop"']
    latency_baseline: 250ms
  - name: checkout
    match: ['service=~"checkout|payments"']
`))
	if err != nil {
		b.Fatal(err)
	}
	var msgs []*webhook.Message
	for _, f := range []string{"01-firing-group-max_alerts-truncated.json", "02-firing-single-warning.json", "03-firing-mixed-with-resolved.json", "05-prometheus-rule-firing.json"} {
		body, err := os.ReadFile("../webhook/testdata/payloads/" + f)
		if err != nil {
			b.Fatal(err)
		}
		m, err := webhook.DecodeMessage(body)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	m, _ := webhook.DecodeMessage(benchPayload(1, 16, "api"))
	msgs = append(msgs, m)
	var alerts []*template.Alert
	for _, m := range msgs {
		for i := range m.Alerts {
			alerts = append(alerts, &m.Alerts[i])
		}
	}
	t := &Triager{Config: cfg}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t.Classify(ctx, nil, alerts[i%len(alerts)], nil)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkStorm10k is one 10,000-alert notification for one service:
// decoded, stored durably, triaged, folded into one incident and committed.
// Peak memory of a whole daemon doing this is BenchmarkStormProcess in
// cmd/amtriage.
func BenchmarkStorm10k(b *testing.B) {
	body := benchPayload(7, 10000, "api")
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := rules.Default()
		cfg.Store.Path = b.TempDir()
		d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&discardNotifier{}}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		msg, err := webhook.DecodeMessage(body)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.committer.Append(context.Background(), body, msg, time.Now()); err != nil {
			b.Fatal(err)
		}
		if err := d.pipeline.Drain(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if open := d.pipeline.OpenIncidents(); len(open) != 1 || open[0].AlertsFiring != len(msg.Alerts) {
			b.Fatalf("want one incident with %d alerts, got %d incidents", len(msg.Alerts), len(open))
		}
		d.Close()
	}
}

// BenchmarkGroupCommit is the committer alone: 64 goroutines appending
// 10-alert bodies, each waiting for its fsync, no HTTP and no pipeline.
func BenchmarkGroupCommit(b *testing.B) {
	store, err := boltstore.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	m := NewMetrics(prometheus.NewRegistry())
	c := NewCommitter(store, m, 4096, nil)
	defer c.Close()
	body := benchPayload(1, 10, "api")
	b.SetBytes(int64(len(body)))
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Append(context.Background(), body, nil, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	h := &dto.Metric{}
	m.CommitBatch.Write(h)
	b.ReportMetric(float64(h.GetHistogram().GetSampleSum())/float64(h.GetHistogram().GetSampleCount()), "appends/commit")
}

// BenchmarkPipeline is the processing side alone: acknowledged 10-alert
// notifications (a new payload for one of 256 services each time, or the
// same payloads again) folded into incidents and committed.
func BenchmarkPipeline(b *testing.B) {
	for _, mode := range []string{"new", "redelivered"} {
		b.Run(mode, func(b *testing.B) {
			cfg := rules.Default()
			cfg.Store.Path = b.TempDir()
			d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&discardNotifier{}}})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			const pool = 512
			payloads := make([][]byte, pool)
			for i := range payloads {
				payloads[i] = benchPayload(i, 10, "svc-"+strconv.Itoa(i%256))
			}
			feed := func(n int, offset int) {
				for i := 0; i < n; i += 256 {
					for j := i; j < min(i+256, n); j++ {
						body := payloads[(j+offset)%pool]
						if mode == "new" {
							body = benchPayload(pool+j+offset, 10, "svc-"+strconv.Itoa(j%256))
						}
						msg, _ := webhook.DecodeMessage(body)
						if err := d.committer.Append(context.Background(), body, msg, time.Now()); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			feed(pool, 0) // every service has an incident
			if err := d.pipeline.Drain(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for done := 0; done < b.N; done += 256 {
				b.StopTimer()
				feed(min(256, b.N-done), done)
				b.StartTimer()
				if err := d.pipeline.Drain(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}

// BenchmarkChunkWithHungSources is the triage of one chunk naming 20
// services while their sources do not answer, in deadlines per chunk: how
// long paging waits. "one at a time" classifies alert after alert (no
// Measure), "measured together" is the pipeline's path; "healthy" is the
// baseline with sources answering at once.
func BenchmarkChunkWithHungSources(b *testing.B) {
	const services = 20
	const deadline = 50 * time.Millisecond
	hung := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		<-r.Context().Done()
	}))
	defer hung.Close()
	defer hung.CloseClientConnections()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"scalar","result":[1795470725,"0.07"]}}`)
	}))
	defer healthy.Close()

	config := func(b *testing.B, probeURL string) *rules.Config {
		var y strings.Builder
		y.WriteString("services:\n")
		for i := range services {
			fmt.Fprintf(&y, "  - name: svc%d\n    match: ['service=\"svc%d\"']\n    queries: {error_ratio: 'errors_svc%d', p99_latency: 'p99_svc%d'}\n", i, i, i, i)
			if probeURL != "" {
				fmt.Fprintf(&y, "    health_url: %s/health/svc%d\n", probeURL, i)
			}
		}
		cfg, err := rules.Parse([]byte(y.String()))
		if err != nil {
			b.Fatal(err)
		}
		return cfg
	}
	promSource := func(b *testing.B, url string) SignalSource {
		s, err := prom.New(rules.PrometheusConfig{URL: url, Timeout: rules.Duration(deadline)}, prom.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	alerts := make([]*template.Alert, services)
	for i := range alerts {
		alerts[i] = alertOf(fmt.Sprintf("svc%d", i))
	}
	cases := []struct {
		name     string
		together bool
		triager  func(b *testing.B) *Triager
	}{
		{"healthy/measured together", true, func(b *testing.B) *Triager {
			return &Triager{Config: config(b, healthy.URL), Sources: []SignalSource{probe.New(probe.Options{Timeout: deadline}), promSource(b, healthy.URL)}}
		}},
		{"prometheus hung/one at a time", false, func(b *testing.B) *Triager {
			return &Triager{Config: config(b, ""), Sources: []SignalSource{promSource(b, hung.URL)}}
		}},
		{"prometheus hung/measured together", true, func(b *testing.B) *Triager {
			return &Triager{Config: config(b, ""), Sources: []SignalSource{promSource(b, hung.URL)}}
		}},
		{"probes hung/one at a time", false, func(b *testing.B) *Triager {
			return &Triager{Config: config(b, hung.URL), Sources: []SignalSource{probe.New(probe.Options{Timeout: deadline})}}
		}},
		{"probes hung/measured together", true, func(b *testing.B) *Triager {
			return &Triager{Config: config(b, hung.URL), Sources: []SignalSource{probe.New(probe.Options{Timeout: deadline})}}
		}},
	}
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			tr := c.triager(b)
			for b.Loop() {
				ev := signal.NewEvaluation(time.Unix(1795470725, 0))
				if c.together {
					tr.Measure(ctx, ev, alerts)
				}
				for _, a := range alerts {
					tr.Classify(ctx, ev, a, nil)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/deadline.Seconds(), "deadlines/chunk")
		})
	}
}

// BenchmarkFlapGrowth: one alert flapping (firing, then resolved, each
// time a new occurrence) beside one steady alert of the same service, for
// 200 and 2,000 flaps. It reports what the history costs: state.db's size,
// the alert records kept, the tombstones (one per flap, pruned after
// incidents.retention) and the bytes of GET /api/incidents.
func BenchmarkFlapGrowth(b *testing.B) {
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	named := func(status string, start time.Time) []byte {
		body := alertPayload("api", status, start)
		return []byte(strings.ReplaceAll(string(body), "HighErrorRate", "Flapping"))
	}
	for _, flaps := range []int{200, 2000} {
		b.Run(fmt.Sprintf("flaps=%d", flaps), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				cfg := rules.Default()
				cfg.Store.Path = b.TempDir()
				d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&discardNotifier{}}})
				if err != nil {
					b.Fatal(err)
				}
				appendBody := func(body []byte) {
					if err := d.committer.Append(context.Background(), body, nil, time.Now()); err != nil {
						b.Fatal(err)
					}
				}
				appendBody(alertPayload("api", "firing", t0.Add(-time.Hour)))
				for f := 0; f < flaps; f++ {
					start := t0.Add(time.Duration(f) * time.Minute)
					appendBody(named("firing", start))
					appendBody(named("resolved", start))
					if f%100 == 99 {
						if err := d.pipeline.Drain(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := d.pipeline.Drain(context.Background()); err != nil {
					b.Fatal(err)
				}
				rec := httptest.NewRecorder()
				d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/incidents", nil))
				ls, err := d.store.LoadState()
				if err != nil {
					b.Fatal(err)
				}
				d.Close()
				fi, err := os.Stat(filepath.Join(cfg.Store.Path, boltstore.StateFile))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(fi.Size())/1024, "state-KiB")
				b.ReportMetric(float64(len(ls.Alerts)), "alert-records")
				b.ReportMetric(float64(len(ls.Tombstones)), "tombstones")
				b.ReportMetric(float64(rec.Body.Len()), "api-incidents-bytes")
			}
		})
	}
}

// wideBody is one notification of n firing alerts, each of its own service.
func wideBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"firing","receiver":"amtriage","groupKey":"{}:{alertname=\"Wide\"}","truncatedAlerts":0,"externalURL":"http://am:9093","alerts":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"Wide","service":"s%06d"},"startsAt":"2026-11-23T03:00:00Z","fingerprint":"%016x"}`, i, i+1)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// BenchmarkWideStormInProcess is BenchmarkWideStorm (cmd/amtriage) without
// a process or deliveries: one notification of 50,000 alerts of distinct
// services appended and processed; it reports state.db's bytes per alert.
func BenchmarkWideStormInProcess(b *testing.B) {
	const n = 50000
	body := wideBody(n)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := rules.Default()
		cfg.Store.Path = b.TempDir()
		d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&discardNotifier{}}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := d.committer.Append(context.Background(), body, nil, time.Now()); err != nil {
			b.Fatal(err)
		}
		if err := d.pipeline.Drain(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := d.pipeline.book.OpenCount(); got != n {
			b.Fatalf("%d incidents open, want %d", got, n)
		}
		d.Close()
		fi, err := os.Stat(filepath.Join(cfg.Store.Path, boltstore.StateFile))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/n, "state-B/alert")
	}
}
