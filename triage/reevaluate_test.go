package triage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/amtriage/amtriage/view"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
)

// fakeProm measures an error ratio the test sets, as the Prometheus source
// would (Source "prometheus"), and counts its calls.
type fakeProm struct {
	mu    sync.Mutex
	ratio float64
	err   error
	calls int
}

func (f *fakeProm) Name() string { return "prometheus" }

func (f *fakeProm) Signals(_ context.Context, ev *signal.Evaluation, _ *template.Alert, _ *rules.Service) (severity.Signals, error) {
	v, err := signal.Memo(ev, "fake", func() (float64, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		return f.ratio, f.err
	})
	if err != nil {
		return severity.Signals{}, err
	}
	return severity.Signals{ErrorRatio: severity.Float{Known: true, Value: v, Source: "prometheus"}}, nil
}

func (f *fakeProm) set(ratio float64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ratio, f.err = ratio, err
}

func (f *fakeProm) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeEnricher diagnoses every service the same way and counts its calls.
type fakeEnricher struct {
	mu    sync.Mutex
	calls int
}

func (e *fakeEnricher) Diagnose(_ context.Context, _ *signal.Evaluation, a *template.Alert, _ *rules.Service, d severity.Decision) *diagnosis.Diagnosis {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	return &diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment, Summary: fmt.Sprintf("call %d for %s", e.calls, a.Labels["service"]),
		Command: "kubectl rollout undo deployment/api -n shop --to-revision=6"}
}

// clockAt moves the pipeline's clock to start+d.
func clockAt(p *Pipeline, start time.Time, d time.Duration) {
	p.mu.Lock()
	p.now = func() time.Time { return start.Add(d) }
	p.mu.Unlock()
}

func withSources(src ...SignalSource) func(*Options) {
	return func(o *Options) { o.Sources = append(o.Sources, src...) }
}

func TestReevaluationRaisesLowersAndKeepsOnSourceFailure(t *testing.T) {
	prom := &fakeProm{ratio: 0.07}
	h := servingHarness(t, testConfig(t), withSources(prom))
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	h.settle()
	p := h.d.Pipeline()
	inc := p.OpenIncidents()[0]
	if inc.Severity != 3 || inc.Rule != 5 {
		t.Fatalf("opened at Sev %d rule %d, want Sev 3 rule 5 (7%% errors)", inc.Severity, inc.Rule)
	}
	start := time.Now()
	ctx := context.Background()
	steps := []struct {
		name     string
		after    time.Duration
		ratio    float64
		err      error
		wantSev  severity.Level
		wantKind incident.EventKind // "" = no new event
	}{
		{"not due yet: Sev 3 waits 15m", 10 * time.Minute, 0.62, nil, 3, ""},
		{"worse: raised to Sev 1 and announced", 16 * time.Minute, 0.62, nil, 1, incident.SeverityChanged},
		{"Prometheus down: the decision stands", 19 * time.Minute, 0, errors.New("connection refused"), 1, ""},
		{"better: lowered to Sev 2 and announced", 22 * time.Minute, 0.30, nil, 2, incident.SeverityChanged},
		{"unchanged: no event", 28 * time.Minute, 0.30, nil, 2, ""},
	}
	for _, st := range steps {
		events := len(h.rec.Events())
		prom.set(st.ratio, st.err)
		clockAt(p, start, st.after)
		if err := p.Reevaluate(ctx); err != nil {
			t.Fatalf("%s: Reevaluate: %v", st.name, err)
		}
		h.settle()
		got := p.OpenIncidents()[0]
		if got.Severity != st.wantSev {
			t.Errorf("%s: Sev %d, want %d (reasons %v)", st.name, got.Severity, st.wantSev, got.Reasons)
		}
		evs := h.rec.Events()
		switch {
		case st.wantKind == "" && len(evs) != events:
			t.Errorf("%s: new events %v, want none", st.name, h.rec.kinds()[events:])
		case st.wantKind != "":
			h.waitFor(st.name+": event", func() bool { return len(h.rec.Events()) > events })
			last := h.rec.Events()[events]
			if last.Kind != st.wantKind || last.Incident.Severity != st.wantSev {
				t.Errorf("%s: event %s at Sev %d, want %s at Sev %d", st.name, last.Kind, last.Incident.Severity, st.wantKind, st.wantSev)
			}
		}
	}
	if got := p.OpenIncidents()[0].PeakSeverity; got != 1 {
		t.Errorf("peak severity %d, want 1: a drop keeps the peak (PagerDuty is not un-paged)", got)
	}
	mfs := h.scrape()
	if v := scalar(mfs, "amtriage_enrichment_partial_total", map[string]string{"source": "prometheus"}); v != 1 {
		t.Errorf("amtriage_enrichment_partial_total{source=prometheus} = %v, want 1", v)
	}
	for outcome, want := range map[string]float64{"raised": 1, "lowered": 1, "unchanged": 2} {
		if v := scalar(mfs, "amtriage_reevaluations_total", map[string]string{"outcome": outcome}); v != want {
			t.Errorf("amtriage_reevaluations_total{outcome=%s} = %v, want %v", outcome, v, want)
		}
	}
}

// Rule 8: two measurements that do not fall mean the service is staying
// broken; a fall by the configured share means it is recovering.
func TestReevaluationObservesStayingBroken(t *testing.T) {
	prom := &fakeProm{ratio: 0.02}
	h := servingHarness(t, testConfig(t), withSources(prom))
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	h.settle()
	p := h.d.Pipeline()
	if inc := p.OpenIncidents()[0]; inc.Severity != 3 || inc.Rule != 11 {
		t.Fatalf("opened at Sev %d rule %d, want Sev 3 rule 11 (2%% errors, recovery unknown)", inc.Severity, inc.Rule)
	}
	start := time.Now()
	clockAt(p, start, 16*time.Minute)
	if err := p.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	inc := p.OpenIncidents()[0]
	if inc.Severity != 2 || inc.Rule != 8 {
		t.Fatalf("after a flat re-evaluation: Sev %d rule %d, want Sev 2 rule 8 (staying broken); reasons %v", inc.Severity, inc.Rule, inc.Reasons)
	}
	if !strings.Contains(strings.Join(inc.Reasons, "\n"), "recovering=false [re-evaluation] (error ratio 2% → 2% between evaluations)") {
		t.Errorf("reasons do not show the trend: %v", inc.Reasons)
	}
	prom.set(0.01, nil) // halved: recovering
	clockAt(p, start, 22*time.Minute)
	if err := p.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if inc := p.OpenIncidents()[0]; inc.Severity != 3 || inc.Rule != 10 {
		t.Fatalf("after the ratio halved: Sev %d rule %d, want Sev 3 rule 10 (recovering); reasons %v", inc.Severity, inc.Rule, inc.Reasons)
	}
}

// A storm is measured once per evaluation, and diagnosed once per service;
// the diagnosis reaches the events and /api/incidents.
func TestStormMeasuredOnceAndDiagnosed(t *testing.T) {
	prom := &fakeProm{ratio: 0.62}
	enr := &fakeEnricher{}
	h := servingHarness(t, testConfig(t), withSources(prom), func(o *Options) {
		o.Enrichment = func(prometheus.Registerer) (*Enrichment, error) {
			return &Enrichment{Enricher: enr}, nil
		}
	})
	h.mustPost(stormPayload(t, 500), "")
	h.settle()
	if n := prom.count(); n != 1 {
		t.Errorf("source called %d times for a 500-alert storm, want 1", n)
	}
	enr.mu.Lock()
	calls := enr.calls
	enr.mu.Unlock()
	if calls != 1 {
		t.Errorf("enricher called %d times, want 1 (once per service)", calls)
	}
	h.waitFor("opened event", func() bool { return len(h.rec.Events()) > 0 })
	ev := h.rec.Events()[0]
	if ev.Incident.Diagnosis == nil || ev.Incident.Diagnosis.Category != diagnosis.ConfigOrDeployment {
		t.Fatalf("opened event carries diagnosis %+v", ev.Incident.Diagnosis)
	}
	res := h.do(http.MethodGet, "/api/incidents", nil, "")
	var body struct {
		Incidents []struct {
			Diagnosis *diagnosis.Diagnosis `json:"diagnosis"`
		} `json:"incidents"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil {
		t.Fatalf("/api/incidents: %v: %s", err, res.body)
	}
	if len(body.Incidents) != 1 || body.Incidents[0].Diagnosis == nil ||
		body.Incidents[0].Diagnosis.Command != "kubectl rollout undo deployment/api -n shop --to-revision=6" {
		t.Fatalf("/api/incidents diagnosis: %s", res.body)
	}
	// A redelivery reuses decisions: no new measurement, no new diagnosis.
	h.mustPost(stormPayload(t, 500), "")
	h.settle()
	if n := prom.count(); n != 1 {
		t.Errorf("redelivery measured again (%d calls)", n)
	}
}

// failingSource always fails, as Kubernetes does with unsynced caches.
type failingSource struct{}

func (failingSource) Name() string { return "kubernetes" }
func (failingSource) Signals(context.Context, *signal.Evaluation, *template.Alert, *rules.Service) (severity.Signals, error) {
	return severity.Signals{}, errors.New("kubernetes caches not synced")
}

// Alertmanager resends groups with templated annotations that change; a
// redelivery while Prometheus is down must not announce a drop.
func TestRedeliveryWithNewAnnotationsKeepsMeasurements(t *testing.T) {
	prom := &fakeProm{ratio: 0.62}
	h := servingHarness(t, testConfig(t), withSources(prom))
	body := alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC))
	h.mustPost(body, "")
	h.settle()
	p := h.d.Pipeline()
	if inc := p.OpenIncidents()[0]; inc.Severity != 1 {
		t.Fatalf("opened at Sev %d, want 1", inc.Severity)
	}
	prom.set(0, errors.New("i/o timeout"))
	h.mustPost([]byte(strings.Replace(string(body), `"summary":"errors on api"`, `"summary":"errors on api: 61.9%"`, 1)), "")
	h.settle()
	inc := p.OpenIncidents()[0]
	if inc.Severity != 1 || inc.Rule != 2 {
		t.Fatalf("after a redelivery with Prometheus down: Sev %d rule %d, want Sev 1 rule 2; reasons %v", inc.Severity, inc.Rule, inc.Reasons)
	}
	if !strings.Contains(strings.Join(inc.Reasons, "\n"), "error_ratio=62% [prometheus] (last measured value") {
		t.Errorf("reasons do not say the value was carried over: %v", inc.Reasons)
	}
	if prom.count() != 2 {
		t.Errorf("source called %d times, want 2 (the changed redelivery is measured again)", prom.count())
	}
	for _, ev := range h.rec.Events() {
		if ev.Kind == incident.SeverityChanged {
			t.Errorf("a severity change was announced: %d → %d", ev.PreviousSeverity, ev.Incident.Severity)
		}
	}
}

// A source that fails does not block what the others measure: a rise is
// adopted while Kubernetes cannot answer.
func TestReevaluationRisesDespiteAFailingSource(t *testing.T) {
	prom := &fakeProm{ratio: 0.07}
	h := servingHarness(t, testConfig(t), withSources(prom, failingSource{}))
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	h.settle()
	p := h.d.Pipeline()
	prom.set(0.62, nil)
	clockAt(p, time.Now(), 16*time.Minute)
	if err := p.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if inc := p.OpenIncidents()[0]; inc.Severity != 1 {
		t.Fatalf("Sev %d, want 1: Prometheus measured 62%% while Kubernetes failed; reasons %v", inc.Severity, inc.Reasons)
	}
	if v := scalar(h.scrape(), "amtriage_enrichment_partial_total", map[string]string{"source": "kubernetes"}); v != 2 {
		t.Errorf("partial{kubernetes} = %v, want 2 (once per evaluation)", v)
	}
}

func TestCarryMeasured(t *testing.T) {
	known := func(v float64, src string) severity.Float { return severity.Float{Known: true, Value: v, Source: src} }
	prev := severity.Signals{
		Reachable:       severity.Bool{Known: true, Value: false, Source: "kubernetes"},
		ErrorRatio:      known(0.3, "annotation"),
		P99Latency:      known(3, "prometheus"),
		LatencyBaseline: known(0.25, "prometheus"),
	}
	now := severity.Signals{P99Latency: known(2.9, "prometheus"), LatencyBaseline: severity.Float{Note: "prometheus: query latency_baseline timed out after 2s"}}
	got := carryMeasured(now, prev, 0.01)
	if got.Reachable.Known {
		t.Error("kubernetes reachable=false carried: pods becoming available is the recovery")
	}
	if got.ErrorRatio.Known {
		t.Error("an annotation's value carried: only measurements are")
	}
	if got.P99Latency.Value != 2.9 {
		t.Errorf("fresh p99 replaced: %+v", got.P99Latency)
	}
	if b := got.LatencyBaseline; !b.Known || b.Value != 0.25 || !strings.Contains(b.Note, "timed out") {
		t.Errorf("baseline %+v, want 0.25 carried with the reason it is not fresh", b)
	}
	if d := severity.Decide(got, severity.DefaultThresholds()); d.Severity != 2 || d.Rule != 4 {
		t.Errorf("Sev %d rule %d, want Sev 2 rule 4 (11.6× the carried baseline)", d.Severity, d.Rule)
	}
}

// Without a measuring source a re-evaluation could learn nothing: it
// neither runs the enricher again nor rewrites the incident.
func TestNoReevaluationWithoutSources(t *testing.T) {
	enr := &fakeEnricher{}
	h := servingHarness(t, testConfig(t), func(o *Options) {
		o.Enrichment = func(prometheus.Registerer) (*Enrichment, error) { return &Enrichment{Enricher: enr}, nil }
	})
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	h.settle()
	p := h.d.Pipeline()
	before := p.OpenIncidents()[0].LastEvaluated
	clockAt(p, time.Now(), time.Hour)
	if err := p.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	enr.mu.Lock()
	calls := enr.calls
	enr.mu.Unlock()
	if after := p.OpenIncidents()[0].LastEvaluated; !after.Equal(before) || calls != 1 {
		t.Fatalf("last evaluated %v → %v, enricher called %d times; want no re-evaluation (1 call, at open)", before, after, calls)
	}
}

// A steady error ratio below the impact floor is noise, not a service staying
// broken: two evaluations of it answer nothing about recovery, and the
// incident stays at Sev 4 (rule 12) instead of paging at Sev 2 (rule 8).
func TestReevaluationOfSteadyNoiseDoesNotPage(t *testing.T) {
	prom := &fakeProm{ratio: 0.002}
	h := servingHarness(t, testConfig(t), withSources(prom))
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	h.settle()
	p := h.d.Pipeline()
	if inc := p.OpenIncidents()[0]; inc.Severity != 4 || inc.Rule != 12 {
		t.Fatalf("opened at Sev %d rule %d, want Sev 4 rule 12 (0.2%% errors, below the floor)", inc.Severity, inc.Rule)
	}
	clockAt(p, time.Now(), 31*time.Minute)
	if err := p.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	inc := p.OpenIncidents()[0]
	if inc.Severity != 4 || inc.Rule != 12 {
		t.Fatalf("after a flat re-evaluation at 0.2%%: Sev %d rule %d, want Sev 4 rule 12; reasons %v", inc.Severity, inc.Rule, inc.Reasons)
	}
	if !strings.Contains(strings.Join(inc.Reasons, "\n"), "no impact to recover from") {
		t.Errorf("reasons do not say why recovery is unknown: %v", inc.Reasons)
	}
}

// A status update due in the same tick as a re-evaluation carries what the
// re-evaluation just measured, not the previous evaluation's findings.
func TestStatusUpdateCarriesTheCurrentFindings(t *testing.T) {
	prom := &fakeProm{ratio: 0.51}
	h := servingHarness(t, testConfig(t), withSources(prom))
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	h.settle()
	p := h.d.Pipeline()
	if inc := p.OpenIncidents()[0]; inc.Severity != 1 {
		t.Fatalf("opened at Sev %d, want Sev 1 (51%% errors)", inc.Severity)
	}
	prom.set(0.60, nil)
	clockAt(p, time.Now(), 2*time.Minute+time.Second) // both the update and the re-evaluation are due
	p.periodic(context.Background())
	h.settle()
	var update *incident.Event
	for _, ev := range h.rec.Events() {
		if ev.Kind == incident.StatusUpdate {
			update = &ev
		}
	}
	if update == nil {
		t.Fatalf("no status update; events %v", h.rec.kinds())
	}
	if got := update.Incident.Reasons[0]; !strings.Contains(got, "60%") {
		t.Errorf("status update says %q, want the 60%% measured in the same tick", got)
	}
}

// An error ratio that dips below the floor after a measured "staying
// broken" is no longer impact: the earlier answer is not carried over, and
// steady noise returns to Sev 4 instead of staying Sev 2 for ever.
func TestStayingBrokenIsNotCarriedBelowTheFloor(t *testing.T) {
	prom := &fakeProm{ratio: 0.012}
	h := servingHarness(t, testConfig(t), withSources(prom))
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	h.settle()
	p := h.d.Pipeline()
	start := time.Now()
	var inc view.Incident
	for i, ratio := range []float64{0.011, 0.009, 0.009, 0.009} {
		prom.set(ratio, nil)
		clockAt(p, start, time.Duration(i+1)*31*time.Minute)
		if err := p.Reevaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
		inc = p.OpenIncidents()[0]
	}
	if inc.Severity != 4 || inc.Rule != 12 {
		t.Fatalf("after 1.2%% → 1.1%% → 0.9%% → 0.9%% → 0.9%%: Sev %d rule %d, want Sev 4 rule 12; reasons %v", inc.Severity, inc.Rule, inc.Reasons)
	}
}
