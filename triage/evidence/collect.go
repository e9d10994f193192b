package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/prom"
)

// Cluster reads the workload's snapshot and logs (*kube.Cluster).
type Cluster interface {
	Snapshot(t kube.Target, at time.Time) *diagnosis.Snapshot
	TailLogs(ctx context.Context, s *diagnosis.Snapshot, maxBytes int) (*kube.Tail, error)
}

// Ranger runs range queries for the record (*prom.Source).
type Ranger interface {
	Range(ctx context.Context, query string, start, end time.Time, step time.Duration, maxSeries, maxPoints int) (*prom.RangeAnswer, error)
}

// Renderer renders one Grafana panel as a PNG (*Grafana).
type Renderer interface {
	RenderPanel(ctx context.Context, panel int64, from, to time.Time, maxBytes int) ([]byte, error)
}

// Record is one incident's evidence as stored.
type Record = store.EvidenceRecord

// Store keeps evidence with its incident (*boltstore.Store).
type Store interface {
	// PutEvidence stores records in one transaction; stored[i] is false
	// when record i's incident is gone or already has evidence.
	PutEvidence(batch []Record) (stored []bool, err error)
	HasEvidence(id string) bool
}

// Sources are what evidence is gathered from; each may be nil (not
// configured), which the evidence notes.
type Sources struct {
	Cluster    Cluster
	Prometheus Ranger
	Grafana    Renderer
	Panels     []rules.GrafanaRender // the panels Grafana renders (one entry: grafana.render)
	// Profile is the service profile of an incident's service, or nil.
	Profile func(service string) *rules.Service
}

// Options configure a Collector.
type Options struct {
	Sources Sources
	Store   Store
	Metrics *Metrics
	Log     *slog.Logger
	Now     func() time.Time
	// Workers collect at once (default 2); Queue is how many declarations
	// may wait (default 64; past it one is dropped and counted); Deadline
	// bounds one collection (default 30s).
	Workers  int
	Queue    int
	Deadline time.Duration
}

// Collector gathers evidence in the background. Offer never blocks.
type Collector struct {
	o       Options
	sources atomic.Pointer[Sources] // replaced on reload
	queue   chan incident.Event
}

// New returns a Collector; Run starts its workers.
func New(o Options) *Collector {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Queue <= 0 {
		o.Queue = 64
	}
	if o.Deadline <= 0 {
		o.Deadline = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	c := &Collector{o: o, queue: make(chan incident.Event, o.Queue)}
	c.SetSources(o.Sources)
	return c
}

// SetSources replaces the sources (a configuration reload). With none of
// Kubernetes, Prometheus and Grafana, declarations are not collected.
func (c *Collector) SetSources(s Sources) { c.sources.Store(&s) }

func (c *Collector) currentSources() Sources { return *c.sources.Load() }

func (s *Sources) any() bool { return s.Cluster != nil || s.Prometheus != nil || s.Grafana != nil }

// Declares reports whether ev declares its incident at Sev 1 or 2: it
// opens there, or its severity first reaches 2 or 1.
func Declares(ev *incident.Event) bool {
	sev := ev.Incident.Severity
	if sev < 1 || sev > 2 {
		return false
	}
	switch ev.Kind {
	case incident.Opened:
		return true
	case incident.SeverityChanged, incident.Reopened:
		// A reopening at Sev 1–2 of one that was Sev 3–4 is its first
		// declaration at a paged level; evidence is stored once, so one
		// already saved stays.
		return ev.PreviousSeverity == 0 || ev.PreviousSeverity > 2
	}
	return false
}

// Offer queues the declarations among events. It is called after the
// events' commit (their pages are enqueued) on the pipeline's goroutine,
// so it never blocks: with the queue full the declaration is dropped and
// counted.
func (c *Collector) Offer(events []incident.Event) {
	for i := range events {
		if !Declares(&events[i]) || !c.sources.Load().any() {
			continue
		}
		select {
		case c.queue <- events[i]:
		default:
			c.o.Metrics.Saved.WithLabelValues(OutcomeDropped).Inc()
			c.o.Log.Warn("evidence not collected: too many declarations at once", "incident", events[i].Incident.ID)
		}
	}
}

// FlushEvery paces the background writes: the evidence gathered meanwhile
// is stored in one transaction, so a storm of Sev 1 declarations costs one
// state.db fsync a second, not one each, beside the pages' commits.
const FlushEvery = time.Second

// Run collects queued declarations with Workers goroutines until ctx ends,
// storing what they gathered every FlushEvery; what is gathered when ctx
// ends is stored before Run returns, what is cut short by it is dropped.
func (c *Collector) Run(ctx context.Context) {
	ready := make(chan gathered, c.o.Queue)
	var workers sync.WaitGroup
	for range c.o.Workers {
		workers.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-c.queue:
					g, ok := c.gather(ctx, ev)
					if ok && ctx.Err() == nil {
						ready <- g
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch []gathered
		var flush <-chan time.Time
		for {
			select {
			case g, ok := <-ready:
				if !ok {
					c.write(batch)
					return
				}
				batch = append(batch, g)
				if flush == nil {
					flush = time.After(FlushEvery)
				}
			case <-flush:
				c.write(batch)
				batch, flush = nil, nil
			}
		}
	}()
	workers.Wait()
	close(ready)
	<-done
}

// gathered is one incident's evidence, ready to store.
type gathered struct {
	e   *Evidence
	rec Record
}

// Outcomes of amtriage_evidence_saved_total.
const (
	OutcomeSaved   = "saved"   // stored, complete
	OutcomePartial = "partial" // stored, with something missing
	OutcomeSkipped = "skipped" // the incident already has evidence, or is gone
	OutcomeFailed  = "failed"  // could not be stored
	OutcomeDropped = "dropped" // the queue was full
)

// Save collects ev's evidence and stores it at once, unless the incident
// already has some (a Sev 1 that went to 3 and back is declared once).
func (c *Collector) Save(ctx context.Context, ev incident.Event) {
	if g, ok := c.gather(ctx, ev); ok {
		c.write([]gathered{g})
	}
}

// gather collects and encodes ev's evidence; false when the incident
// already has some, or it cannot be encoded (counted).
func (c *Collector) gather(ctx context.Context, ev incident.Event) (gathered, bool) {
	id := ev.Incident.ID
	if c.o.Store.HasEvidence(id) {
		c.o.Metrics.Saved.WithLabelValues(OutcomeSkipped).Inc()
		return gathered{}, false
	}
	e := c.Collect(ctx, ev)
	record, pngs, err := Encode(e)
	if err != nil {
		c.o.Metrics.Saved.WithLabelValues(OutcomeFailed).Inc()
		c.o.Log.Error("evidence not stored", "incident", id, "err", err)
		return gathered{}, false
	}
	return gathered{e: e, rec: Record{ID: id, JSON: record, PNGs: pngs}}, true
}

// write stores a batch in one transaction and counts each outcome.
func (c *Collector) write(batch []gathered) {
	if len(batch) == 0 {
		return
	}
	recs := make([]Record, len(batch))
	for i, g := range batch {
		recs[i] = g.rec
	}
	stored, err := c.o.Store.PutEvidence(recs)
	for i, g := range batch {
		switch {
		case err != nil:
			c.o.Metrics.Saved.WithLabelValues(OutcomeFailed).Inc()
			c.o.Log.Error("evidence not stored", "incident", g.rec.ID, "err", err)
		case !stored[i]:
			c.o.Metrics.Saved.WithLabelValues(OutcomeSkipped).Inc()
		default:
			outcome := OutcomeSaved
			if len(g.e.Missing) > 0 {
				outcome = OutcomePartial
			}
			c.o.Metrics.Saved.WithLabelValues(outcome).Inc()
			c.o.Metrics.Bytes.Observe(float64(g.e.Bytes))
			c.o.Log.Info("evidence saved", "incident", g.rec.ID, "bytes", g.e.Bytes, "missing", len(g.e.Missing))
		}
	}
}

// Collect gathers the evidence of ev within the deadline: Kubernetes,
// Prometheus and Grafana at once. What fails or is not configured is noted
// in Missing; a part still running at the deadline is abandoned.
func (c *Collector) Collect(ctx context.Context, ev incident.Event) *Evidence {
	ctx, cancel := context.WithTimeout(ctx, c.o.Deadline)
	defer cancel()
	src := c.currentSources()
	to := ev.At
	if to.IsZero() {
		to = c.o.Now()
	}
	// Whole milliseconds, as Prometheus and Grafana take them: the range
	// queries' points then fall within the window exactly.
	to = to.Truncate(time.Millisecond)
	e := &Evidence{
		Incident: ev.Incident.ID, Service: ev.Incident.Service, Severity: int(ev.Incident.Severity), Trigger: string(ev.Kind),
		DeclaredAt: ev.At.UTC(), From: to.Add(-Window).UTC(), To: to.UTC(),
	}
	var profile *rules.Service
	if src.Profile != nil {
		profile = src.Profile(ev.Incident.Service)
	}
	var mu sync.Mutex
	missing := func(format string, args ...any) {
		mu.Lock()
		e.Missing = append(e.Missing, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.kubernetes(ctx, src, &ev, profile, e, missing) })
	wg.Go(func() { c.queries(ctx, src, profile, e, missing) })
	wg.Go(func() { c.panels(ctx, src, e, missing) })
	wg.Wait()
	e.CollectedAt = c.o.Now().UTC()
	return e
}

func (c *Collector) kubernetes(ctx context.Context, src Sources, ev *incident.Event, profile *rules.Service, e *Evidence, missing func(string, ...any)) {
	if src.Cluster == nil {
		missing("kubernetes: not configured")
		return
	}
	t, ok := kube.TargetFor(alertLabels(ev), profile)
	if !ok {
		missing("kubernetes: the alert names no workload (no namespace)")
		return
	}
	snap := src.Cluster.Snapshot(t, e.To)
	cp := *snap
	e.Events, cp.Events = snap.Events, nil
	cp.Logs = nil
	e.Snapshot = &cp
	for _, p := range snap.Partial {
		missing("kubernetes: %s", p)
	}
	tail, err := src.Cluster.TailLogs(ctx, snap, MaxLogBytes)
	switch {
	case err != nil:
		missing("kubernetes: %v", err)
	case tail == nil:
		missing("kubernetes: no pod to read logs of")
	default:
		e.Logs = tail
	}
}

// alertLabels are the labels of the incident's decisive alert, else of its first.
func alertLabels(ev *incident.Event) map[string]string {
	for i := range ev.Alerts {
		if ev.Alerts[i].Key == ev.Incident.Decisive {
			return ev.Alerts[i].Labels
		}
	}
	if len(ev.Alerts) > 0 {
		return ev.Alerts[0].Labels
	}
	return nil
}

// ProfileQueries are a profile's queries by key, in the order of
// rules.ServiceQueries: every string field with a yaml name, so a query
// added there is gathered too.
func ProfileQueries(q rules.ServiceQueries) [][2]string {
	var out [][2]string
	v := reflect.ValueOf(q)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Type.Kind() != reflect.String || name == "" || name == "-" {
			continue
		}
		if s := v.Field(i).String(); s != "" {
			out = append(out, [2]string{name, s})
		}
	}
	return out
}

func (c *Collector) queries(ctx context.Context, src Sources, profile *rules.Service, e *Evidence, missing func(string, ...any)) {
	if profile == nil {
		missing("prometheus: no service profile, so no queries")
		return
	}
	qs := ProfileQueries(profile.Queries)
	if len(qs) == 0 {
		return // nothing to ask: not missing
	}
	if src.Prometheus == nil {
		missing("prometheus: not configured")
		return
	}
	out := make([]Query, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() {
			out[i] = Query{Name: q[0], Query: q[1], Step: Step.String()}
			ans, err := src.Prometheus.Range(ctx, q[1], e.From, e.To, Step, MaxSeries, MaxPoints)
			if err != nil {
				out[i].Error = err.Error()
				missing("prometheus: %s: %v", q[0], err)
				return
			}
			out[i].RangeAnswer = ans
		})
	}
	wg.Wait()
	e.Queries = out
}

func (c *Collector) panels(ctx context.Context, src Sources, e *Evidence, missing func(string, ...any)) {
	if src.Grafana == nil {
		return // grafana.render is optional: nothing missing
	}
	for _, r := range src.Panels {
		for _, id := range r.PanelIDs {
			p := Panel{ID: id, Width: r.Width, Height: r.Height}
			img, err := src.Grafana.RenderPanel(ctx, id, e.From, e.To, MaxPNGBytes)
			var big errTooLarge
			switch {
			case errors.As(err, &big):
				p.Clipped = big.Error() + " (over the PNG bound, not kept)"
				missing("grafana: panel %d: PNG %s", id, p.Clipped)
			case err != nil:
				p.Error = err.Error()
				missing("grafana: %v", err)
			default:
				p.png, p.Bytes = img, len(img)
				p.URL = "evidence/panels/" + strconv.FormatInt(id, 10) + ".png"
			}
			e.Panels = append(e.Panels, p)
		}
	}
}

// Encode is the stored record and the PNGs by panel id, within MaxBytes:
// past it, PNGs are left out from the last (marked clipped), then log
// lines from the oldest, then series points.
func Encode(e *Evidence) ([]byte, map[int64][]byte, error) {
	for {
		pngs := map[int64][]byte{}
		size := 0
		for i := range e.Panels {
			if p := &e.Panels[i]; p.png != nil {
				pngs[p.ID] = p.png
				size += len(p.png)
			}
		}
		e.Bytes = 0
		record, err := json.Marshal(e)
		if err != nil {
			return nil, nil, fmt.Errorf("encode evidence: %w", err)
		}
		// The record states its own size: count it, with slack for the
		// digits of Bytes itself.
		e.Bytes = len(record) + size + 16
		if e.Bytes <= MaxBytes {
			record, err = json.Marshal(e)
			return record, pngs, err
		}
		if !shrink(e, e.Bytes-MaxBytes) {
			return nil, nil, fmt.Errorf("encode evidence: %d bytes, over the %d bound, and nothing left to clip", e.Bytes, MaxBytes)
		}
	}
}

// shrink leaves out at least over bytes, or reports that nothing is left.
func shrink(e *Evidence, over int) bool {
	for i := len(e.Panels) - 1; i >= 0; i-- {
		if p := &e.Panels[i]; p.png != nil {
			p.Clipped = fmt.Sprintf("… clipped: %d bytes more (over the incident's bound, not kept)", len(p.png))
			p.png, p.Bytes, p.URL = nil, 0, ""
			return true
		}
	}
	if l := e.Logs; l != nil && len(l.Lines) > 0 {
		n, cut := 0, 0
		for n < len(l.Lines) && cut < over {
			cut += len(l.Lines[n]) + 1
			n++
		}
		l.Lines = l.Lines[n:]
		l.Clipped = fmt.Sprintf("… clipped: %d bytes more", cut+clippedBytes(l.Clipped))
		return true
	}
	for i := range e.Queries {
		if a := e.Queries[i].RangeAnswer; a != nil && len(a.Series) > 0 {
			a.Series = a.Series[:len(a.Series)-1]
			a.Clipped = strings.TrimSpace(a.Clipped + " … clipped: 1 series more (over the incident's bound)")
			return true
		}
	}
	return false
}

// clippedBytes reads N back from "… clipped: N bytes more".
func clippedBytes(mark string) int {
	var n int
	_, _ = fmt.Sscanf(mark, "… clipped: %d bytes more", &n)
	return n
}

// Metrics are the evidence's metrics.
type Metrics struct {
	Saved *prometheus.CounterVec
	Bytes prometheus.Histogram
}

// NewMetrics registers the metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Saved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_evidence_saved_total",
			Help: "Evidence collections of Sev 1-2 declarations, by outcome: saved, partial (stored, something missing), skipped (already had evidence, or gone), failed (not stored), dropped (queue full).",
		}, []string{"outcome"}),
		Bytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "amtriage_evidence_bytes",
			Help:    "Size of each incident's stored evidence (record and PNGs), bytes; bounded at 2 MiB.",
			Buckets: prometheus.ExponentialBuckets(4<<10, 2, 10), // 4 KiB .. 2 MiB
		}),
	}
	for _, o := range []string{OutcomeSaved, OutcomePartial, OutcomeSkipped, OutcomeFailed, OutcomeDropped} {
		m.Saved.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.Saved, m.Bytes)
	}
	return m
}
