package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/prom"

	"github.com/amtriage/amtriage/internal/fakes/grafana"
)

var declared = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type fakeCluster struct {
	target kube.Target
	logErr error
	lines  []string
}

func (f *fakeCluster) Snapshot(t kube.Target, at time.Time) *diagnosis.Snapshot {
	f.target = t
	return &diagnosis.Snapshot{
		Namespace: t.Namespace, Workload: "deployment/" + t.Deployment,
		Pods:      []diagnosis.Pod{{Name: "api-1", Phase: "Running", Reason: "CrashLoopBackOff", Restarts: 4}},
		PodsTotal: 1,
		Events:    []diagnosis.Event{{Time: at, Object: "Pod/api-1", Reason: "BackOff", Message: "Back-off restarting failed container"}},
	}
}

func (f *fakeCluster) TailLogs(_ context.Context, s *diagnosis.Snapshot, maxBytes int) (*kube.Tail, error) {
	if f.logErr != nil {
		return nil, f.logErr
	}
	return &kube.Tail{Pod: s.Pods[0].Name, Lines: f.lines}, nil
}

type fakeRanger struct {
	mu      sync.Mutex
	queries []string
	err     error
}

func (f *fakeRanger) Range(_ context.Context, query string, start, end time.Time, step time.Duration, maxSeries, maxPoints int) (*prom.RangeAnswer, error) {
	f.mu.Lock()
	f.queries = append(f.queries, query)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if end.Sub(start) != Window || step != Step || maxSeries != MaxSeries || maxPoints != MaxPoints {
		return nil, errors.New("unexpected range")
	}
	return &prom.RangeAnswer{Series: []prom.Series{{Labels: map[string]string{}, Points: []prom.Point{{T: start.UnixMilli(), V: 0.2}, {T: end.UnixMilli(), V: 0.3}}}}}, nil
}

type memStore struct {
	mu      sync.Mutex
	records map[string][]byte
	pngs    map[string]map[int64][]byte
	err     error
	writes  int // transactions
}

func newMemStore() *memStore {
	return &memStore{records: map[string][]byte{}, pngs: map[string]map[int64][]byte{}}
}

func (m *memStore) PutEvidence(batch []Record) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	m.writes++
	stored := make([]bool, len(batch))
	for i, r := range batch {
		if _, ok := m.records[r.ID]; ok {
			continue
		}
		m.records[r.ID], m.pngs[r.ID], stored[i] = r.JSON, r.PNGs, true
	}
	return stored, nil
}

func (m *memStore) HasEvidence(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.records[id]
	return ok
}

var profile = &rules.Service{
	Name: "api", Namespace: "shop", Deployment: "api",
	Queries: rules.ServiceQueries{ErrorRatio: "errors", P99Latency: "p99", LatencyBaseline: "baseline"},
}

func event(kind incident.EventKind, sev, prev severity.Level) incident.Event {
	return incident.Event{
		Kind: kind, At: declared, PreviousSeverity: prev,
		Incident: incident.Incident{ID: "api-1", Service: "api", Severity: sev, Decisive: "k"},
		Alerts:   []incident.Alert{{Key: "k", Labels: map[string]string{"alertname": "HighErrorRate", "namespace": "shop"}}},
	}
}

func render(g *grafana.Server, token string) *Grafana {
	return &Grafana{URL: g.URL, Token: token, Render: rules.GrafanaRender{DashboardUID: "svc", PanelIDs: []int64{2, 7}, Width: 600, Height: 300, Timeout: rules.Duration(5 * time.Second)}}
}

func TestDeclares(t *testing.T) {
	tests := []struct {
		kind      incident.EventKind
		sev, prev severity.Level
		want      bool
	}{
		{incident.Opened, 1, 0, true},
		{incident.Opened, 2, 0, true},
		{incident.Opened, 3, 0, false},
		{incident.SeverityChanged, 2, 3, true},
		{incident.SeverityChanged, 1, 4, true},
		{incident.SeverityChanged, 1, 2, false}, // already declared at Sev 2
		{incident.SeverityChanged, 3, 1, false},
		{incident.StatusUpdate, 1, 0, false},
		{incident.ResolvedEvent, 1, 0, false},
		{incident.Reopened, 1, 3, true}, // a Sev 3 back at Sev 1
		{incident.Reopened, 1, 1, false},
	}
	for _, tt := range tests {
		ev := event(tt.kind, tt.sev, tt.prev)
		if got := Declares(&ev); got != tt.want {
			t.Errorf("%s sev %d from %d: %v, want %v", tt.kind, tt.sev, tt.prev, got, tt.want)
		}
	}
}

func TestCollect(t *testing.T) {
	const token = "glsa_ok"
	g := grafana.New(token)
	defer g.Close()
	tests := []struct {
		name        string
		sources     func() Sources
		fault       func()
		wantMissing []string // substrings, in any order; nil: nothing missing
		wantPanels  int      // PNGs kept
		check       func(t *testing.T, e *Evidence)
	}{
		{
			name: "every source",
			sources: func() Sources {
				return Sources{Cluster: &fakeCluster{lines: []string{"boot", "panic: nil map"}}, Prometheus: &fakeRanger{}, Grafana: render(g, token),
					Panels: []rules.GrafanaRender{render(g, token).Render}, Profile: func(string) *rules.Service { return profile }}
			},
			wantPanels: 2,
			check: func(t *testing.T, e *Evidence) {
				if e.Snapshot == nil || len(e.Snapshot.Pods) != 1 || len(e.Events) != 1 || e.Snapshot.Events != nil {
					t.Errorf("snapshot %+v events %+v", e.Snapshot, e.Events)
				}
				if e.Logs == nil || strings.Join(e.Logs.Lines, "|") != "boot|panic: nil map" {
					t.Errorf("logs %+v", e.Logs)
				}
				var names []string
				for _, q := range e.Queries {
					names = append(names, q.Name)
					if q.RangeAnswer == nil || len(q.Series) != 1 {
						t.Errorf("query %s: %+v", q.Name, q)
					}
				}
				if strings.Join(names, ",") != "error_ratio,p99_latency,latency_baseline" {
					t.Errorf("queries %v", names)
				}
				if !e.From.Equal(declared.Add(-30*time.Minute)) || !e.To.Equal(declared) {
					t.Errorf("window %s..%s", e.From, e.To)
				}
				for _, p := range e.Panels {
					if _, err := png.Decode(bytes.NewReader(p.PNG())); err != nil {
						t.Errorf("panel %d: %v", p.ID, err)
					}
				}
				r := g.Renders()
				last := r[len(r)-1]
				if last.DashboardUID != "svc" || last.PanelID != 7 || last.From != e.From.UnixMilli() || last.To != e.To.UnixMilli() || last.Width != 600 || last.Height != 300 {
					t.Errorf("render request %+v", last)
				}
			},
		},
		{
			name:        "nothing configured",
			sources:     func() Sources { return Sources{} },
			wantMissing: []string{"kubernetes: not configured", "prometheus: no service profile"},
		},
		{
			name: "sources fail",
			sources: func() Sources {
				return Sources{Cluster: &fakeCluster{logErr: errors.New("logs of pod shop/api-1: forbidden")}, Prometheus: &fakeRanger{err: errors.New("query failed: connection refused")},
					Grafana: render(g, "glsa_wrong"), Panels: []rules.GrafanaRender{{PanelIDs: []int64{2}}}, Profile: func(string) *rules.Service { return profile }}
			},
			wantMissing: []string{"kubernetes: logs of pod shop/api-1: forbidden", "prometheus: error_ratio: query failed: connection refused",
				"prometheus: p99_latency: query failed", "prometheus: latency_baseline: query failed", "grafana render of panel 2: HTTP 401 (check grafana.token_file)"},
		},
		{
			name: "a PNG over its bound",
			sources: func() Sources {
				return Sources{Grafana: render(g, token), Panels: []rules.GrafanaRender{{PanelIDs: []int64{2}}}}
			},
			fault:       func() { g.SetRenderSize(MaxPNGBytes + 1000) },
			wantMissing: []string{"kubernetes: not configured", "prometheus: no service profile", "grafana: panel 2: PNG … clipped: "},
			check: func(t *testing.T, e *Evidence) {
				if !strings.Contains(e.Panels[0].Clipped, "bytes more") {
					t.Errorf("panel %+v", e.Panels[0])
				}
			},
		},
		{
			name: "Grafana failing",
			sources: func() Sources {
				return Sources{Grafana: render(g, token), Panels: []rules.GrafanaRender{{PanelIDs: []int64{2}}}}
			},
			fault:       func() { g.FailNext(1, 500) },
			wantMissing: []string{"kubernetes: not configured", "prometheus: no service profile", "grafana render of panel 2: HTTP 500"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g.SetRenderSize(0)
			if tt.fault != nil {
				tt.fault()
			}
			c := New(Options{Sources: tt.sources(), Store: newMemStore(), Now: func() time.Time { return declared.Add(time.Second) }})
			e := c.Collect(context.Background(), event(incident.Opened, 1, 0))
			if len(e.Missing) != len(tt.wantMissing) {
				t.Fatalf("missing %q, want %q", e.Missing, tt.wantMissing)
			}
			for _, want := range tt.wantMissing {
				found := false
				for _, m := range e.Missing {
					found = found || strings.Contains(m, want)
				}
				if !found {
					t.Errorf("missing %q lacks %q", e.Missing, want)
				}
			}
			kept := 0
			for _, p := range e.Panels {
				if p.PNG() != nil {
					kept++
				}
			}
			if kept != tt.wantPanels {
				t.Errorf("%d PNGs kept, want %d", kept, tt.wantPanels)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

// A hung Grafana does not hold the collection past its deadline: the rest
// is kept, the panel noted.
func TestCollectDeadline(t *testing.T) {
	g := grafana.New("tok")
	defer g.Close()
	g.HangNext(1)
	r := render(g, "tok")
	r.Render.Timeout = 0 // only the collection's deadline applies
	c := New(Options{Deadline: 100 * time.Millisecond, Store: newMemStore(),
		Sources: Sources{Cluster: &fakeCluster{}, Grafana: r, Panels: []rules.GrafanaRender{{PanelIDs: []int64{2}}},
			Profile: func(string) *rules.Service { return &rules.Service{Name: "api", Namespace: "shop", Deployment: "api"} }}})
	e := c.Collect(context.Background(), event(incident.Opened, 1, 0))
	if e.Snapshot == nil || len(e.Panels) != 1 || !strings.Contains(e.Panels[0].Error, "deadline exceeded") {
		t.Fatalf("evidence %+v, panels %+v", e, e.Panels)
	}
}

func TestEncodeBound(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, MaxPNGBytes)
	lines := make([]string, 0, 1000)
	for range 1000 {
		lines = append(lines, strings.Repeat("l", 63)) // 64 KiB with newlines
	}
	e := &Evidence{Incident: "api-1", Logs: &kube.Tail{Lines: lines}}
	for i := range 9 { // more than the bound: 9 × 256 KiB
		e.Panels = append(e.Panels, Panel{ID: int64(i + 1), png: big, Bytes: len(big)})
	}
	record, pngs, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	size := len(record)
	for _, p := range pngs {
		size += len(p)
	}
	if size > MaxBytes || e.Bytes > MaxBytes || e.Bytes < size {
		t.Fatalf("stored %d bytes (record says %d), bound %d", size, e.Bytes, MaxBytes)
	}
	if len(pngs) != 7 || !strings.Contains(e.Panels[8].Clipped, "… clipped: 262144 bytes more") || e.Panels[6].Clipped != "" {
		t.Fatalf("%d PNGs kept; panels %+v", len(pngs), e.Panels[6:])
	}
	var back Evidence
	if err := json.Unmarshal(record, &back); err != nil || back.Bytes != e.Bytes || back.Panels[8].Clipped == "" {
		t.Fatalf("record %v %+v", err, back)
	}
}

func TestSave(t *testing.T) {
	store := newMemStore()
	m := NewMetrics(nil)
	c := New(Options{Store: store, Metrics: m, Sources: Sources{Cluster: &fakeCluster{lines: []string{"x"}}}})
	c.Save(context.Background(), event(incident.Opened, 1, 0))
	if !store.HasEvidence("api-1") || testutil.ToFloat64(m.Saved.WithLabelValues(OutcomePartial)) != 1 {
		t.Fatalf("not saved: %v", store.records)
	}
	if testutil.CollectAndCount(m.Bytes) != 1 {
		t.Fatal("no size observed")
	}
	// Declared again (Sev 1 → 3 → 2): kept once.
	c.Save(context.Background(), event(incident.SeverityChanged, 2, 3))
	if testutil.ToFloat64(m.Saved.WithLabelValues(OutcomeSkipped)) != 1 {
		t.Fatal("second declaration not skipped")
	}
	store.err = errors.New("disk full")
	ev := event(incident.Opened, 1, 0)
	ev.Incident.ID = "api-2"
	c.Save(context.Background(), ev)
	if testutil.ToFloat64(m.Saved.WithLabelValues(OutcomeFailed)) != 1 {
		t.Fatal("failure not counted")
	}
}

// Offer never blocks the pipeline: past the queue a declaration is dropped
// and counted; what is not a declaration is not queued. Run collects the
// queued ones.
func TestOfferNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMetrics(nil)
		store := newMemStore()
		c := New(Options{Store: store, Metrics: m, Queue: 2, Sources: Sources{Cluster: &fakeCluster{}}})
		c.Offer([]incident.Event{event(incident.Opened, 3, 0), event(incident.StatusUpdate, 1, 0)})
		if len(c.queue) != 0 {
			t.Fatalf("queued %d non-declarations", len(c.queue))
		}
		second := event(incident.Opened, 2, 0)
		second.Incident.ID = "api-2"
		c.Offer([]incident.Event{event(incident.Opened, 1, 0), second, event(incident.SeverityChanged, 1, 3)})
		if len(c.queue) != 2 || testutil.ToFloat64(m.Saved.WithLabelValues(OutcomeDropped)) != 1 {
			t.Fatalf("queue %d, dropped %v", len(c.queue), testutil.ToFloat64(m.Saved.WithLabelValues(OutcomeDropped)))
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		synctest.Wait() // the workers took both and wait for more
		cancel()
		<-done
		if !store.HasEvidence("api-1") || !store.HasEvidence("api-2") {
			t.Fatal("queued declarations not collected")
		}
		if store.writes != 1 {
			t.Fatalf("%d store transactions for two incidents gathered together, want 1", store.writes)
		}
	})
}

// Without any source (a reload removed them) declarations are not queued.
func TestOfferWithoutSources(t *testing.T) {
	c := New(Options{Store: newMemStore(), Sources: Sources{Cluster: &fakeCluster{}}})
	c.SetSources(Sources{})
	c.Offer([]incident.Event{event(incident.Opened, 1, 0)})
	if len(c.queue) != 0 {
		t.Fatal("queued with no source")
	}
	c.SetSources(Sources{Prometheus: &fakeRanger{}})
	c.Offer([]incident.Event{event(incident.Opened, 1, 0)})
	if len(c.queue) != 1 {
		t.Fatal("not queued with a source")
	}
}
