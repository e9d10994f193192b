package triage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
)

// gatedSource measures every service's error ratio once per evaluation,
// like the real sources, and holds each lookup while the gate is shut,
// counting how many are held at once.
type gatedSource struct {
	mu      sync.Mutex
	gate    chan struct{}
	open    func()
	held    int
	maxHeld int
	lookups map[string]int
}

// newGatedSource starts shut; the test's end opens it.
func newGatedSource(t *testing.T) *gatedSource {
	g := &gatedSource{lookups: map[string]int{}}
	g.shut()
	t.Cleanup(g.release)
	return g
}

// shut holds the lookups from now on.
func (g *gatedSource) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	gate := make(chan struct{})
	g.gate, g.open, g.maxHeld = gate, sync.OnceFunc(func() { close(gate) }), 0
}

// release lets the held lookups, and later ones, go.
func (g *gatedSource) release() {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	open()
}

func (g *gatedSource) count(service string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lookups[service]
}

func (g *gatedSource) Name() string { return "prometheus" }

func (g *gatedSource) Signals(_ context.Context, ev *signal.Evaluation, _ *template.Alert, svc *rules.Service) (severity.Signals, error) {
	if svc == nil {
		return severity.Signals{}, nil
	}
	v, _ := signal.Memo(ev, "gated\x00"+svc.Name, func() (float64, error) {
		g.mu.Lock()
		g.held++
		g.maxHeld = max(g.maxHeld, g.held)
		g.lookups[svc.Name]++
		gate := g.gate
		g.mu.Unlock()
		<-gate
		g.mu.Lock()
		g.held--
		g.mu.Unlock()
		return 0.62, nil
	})
	return severity.Signals{ErrorRatio: severity.Float{Known: true, Value: v, Source: "prometheus"}}, nil
}

// waitHeld waits until n lookups are held at once; sequential lookups
// never get there.
func (g *gatedSource) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		held := g.held
		g.mu.Unlock()
		if held == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Fatalf("at most %d lookups at once, want %d", g.maxHeld, n)
}

// profiles is a configuration with n service profiles, svc0…svcN-1, each
// matching its service label.
func profiles(t *testing.T, n int) *rules.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: svc%d\n    match: ['service=\"svc%d\"']\n", i, i)
	}
	cfg, err := rules.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, b.String())
	}
	cfg.Store.Path = t.TempDir()
	return cfg
}

func alertOf(service string) *template.Alert {
	return &template.Alert{Status: "firing", Labels: template.KV{"alertname": "HighErrorRate", "service": service},
		Fingerprint: "fp-" + service, StartsAt: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)}
}

// Measure asks about measureParallel services at once, each once, and
// Classify then answers from the evaluation without asking again.
func TestMeasureAsksServicesConcurrently(t *testing.T) {
	const services = 2*measureParallel + 3
	src := newGatedSource(t)
	tr := &Triager{Config: profiles(t, services), Sources: []SignalSource{src}}
	var alerts []*template.Alert
	for i := range services {
		alerts = append(alerts, alertOf(fmt.Sprintf("svc%d", i)), alertOf(fmt.Sprintf("svc%d", i)))
	}
	alerts = append(alerts, alertOf("no-profile"))
	ev := signal.NewEvaluation(time.Date(2026, 11, 23, 3, 1, 0, 0, time.UTC))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Measure(context.Background(), ev, alerts)
	}()
	src.waitHeld(t, measureParallel)
	src.release()
	<-done
	if src.maxHeld != measureParallel {
		t.Errorf("%d lookups at once, want at most %d", src.maxHeld, measureParallel)
	}
	for i := range services {
		if n := src.count(fmt.Sprintf("svc%d", i)); n != 1 {
			t.Errorf("svc%d looked up %d times, want 1", i, n)
		}
	}
	if len(src.lookups) != services {
		t.Errorf("looked up %v: an alert without a profile is not measured", src.lookups)
	}
	r := tr.Classify(context.Background(), ev, alertOf("svc3"), nil)
	if r.Decision.Severity != 1 || r.Decision.Signals.ErrorRatio.Value != 0.62 {
		t.Fatalf("classified from the memo: %+v", r.Decision)
	}
	if n := src.count("svc3"); n != 1 {
		t.Errorf("Classify looked svc3 up again (%d lookups)", n)
	}
}

// The pipeline measures a chunk's services at once before deciding; a
// redelivery of alerts already decided is not measured again.
func TestDrainMeasuresServicesConcurrently(t *testing.T) {
	const services = measureParallel + 2
	src := newGatedSource(t)
	h := handlerHarness(t, profiles(t, services), withSources(src))
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	for i := range services {
		h.mustPost(alertPayload(fmt.Sprintf("svc%d", i), "firing", start), "")
	}
	done := make(chan error, 1)
	go func() { done <- h.d.Pipeline().Drain(context.Background()) }()
	src.waitHeld(t, measureParallel)
	src.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(h.d.Pipeline().OpenIncidents()); got != services {
		t.Fatalf("%d incidents, want %d", got, services)
	}
	for _, inc := range h.d.Pipeline().OpenIncidents() {
		if inc.Severity != 1 {
			t.Errorf("%s: Sev %d, want 1 from the measured 62%%", inc.Service, inc.Severity)
		}
	}
	h.mustPost(alertPayload("svc0", "firing", start), "")
	if err := h.d.Pipeline().Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := src.count("svc0"); n != 1 {
		t.Errorf("a redelivery was measured again: %d lookups", n)
	}
}

// Re-evaluation measures due incidents a group at a time, and between
// groups lets new notifications go first: the rest stay due.
func TestReevaluationMeasuresGroupsAndYields(t *testing.T) {
	const services = measureParallel + 2
	src := newGatedSource(t)
	src.release()
	h := handlerHarness(t, profiles(t, services), withSources(src))
	p := h.d.Pipeline()
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	for i := range services {
		h.mustPost(alertPayload(fmt.Sprintf("svc%d", i), "firing", start), "")
	}
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.wake: // nothing new is waiting
	default:
	}
	measured := func() (n int) {
		for i := range services {
			n += src.count(fmt.Sprintf("svc%d", i))
		}
		return n
	}
	if n := measured(); n != services {
		t.Fatalf("%d lookups to open %d incidents", n, services)
	}

	src.shut()
	clockAt(p, time.Now(), 3*time.Minute) // Sev 1 is due every 2m
	done := make(chan error, 1)
	go func() { done <- p.Reevaluate(context.Background()) }()
	src.waitHeld(t, measureParallel)
	p.Wake() // a notification arrives during the first group
	src.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := measured() - services; n != measureParallel {
		t.Fatalf("the first pass measured %d incidents, want the first group of %d, then yield", n, measureParallel)
	}
	<-p.wake
	if err := p.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := measured() - services; n != services {
		t.Fatalf("after the second pass %d incidents were re-measured, want all %d", n, services)
	}
	if v := scalar(h.scrape(), "amtriage_reevaluations_total", map[string]string{"outcome": "unchanged"}); v != services {
		t.Errorf("amtriage_reevaluations_total{outcome=unchanged} = %v, want %d", v, services)
	}
}
