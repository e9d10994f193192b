package triage

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/verify"
)

// fakeCluster is a workload whose ready pods the test sets; it counts reads.
type fakeCluster struct {
	mu           sync.Mutex
	ready, reads int
}

func (f *fakeCluster) Snapshot(t kube.Target, _ time.Time) *diagnosis.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	s := &diagnosis.Snapshot{Namespace: t.Namespace, Workload: "deployment/" + t.Deployment,
		Deployment: &diagnosis.Deployment{Name: t.Deployment, Desired: 3, Available: int32(f.ready)}, PodsTotal: 3}
	for i := range 3 {
		s.Pods = append(s.Pods, diagnosis.Pod{Name: t.Deployment + "-" + string(rune('a'+i)), Phase: "Running", Ready: i < f.ready})
	}
	return s
}

func (f *fakeCluster) set(ready int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready = ready
}

func withVerifier(v *verify.Verifier) func(*Options) {
	return func(o *Options) {
		o.Enrichment = func(prometheus.Registerer) (*Enrichment, error) { return &Enrichment{Verifier: v}, nil }
	}
}

func apiProfile(t *testing.T) *rules.Config {
	t.Helper()
	cfg, err := rules.Parse([]byte("services:\n  - name: api\n    match: ['service=\"api\"']\n    namespace: shop\n    deployment: api\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.Path = t.TempDir()
	return cfg
}

func kindsOf(evs []incident.Event) []string {
	out := []string{}
	for _, ev := range evs {
		out = append(out, string(ev.Kind))
	}
	return out
}

// TestVerificationRounds: resolved alerts with pods still down keep the
// incident verifying, announced once; pods ready move it to monitoring
// (receivers told "resolved"); monitor_for passing closes it. Each check is
// on the timeline.
func TestVerificationRounds(t *testing.T) {
	cluster := &fakeCluster{ready: 1}
	h := servingHarness(t, apiProfile(t), withVerifier(&verify.Verifier{Cluster: cluster}))
	p := h.d.Pipeline()
	started := time.Now().Add(-10 * time.Minute).UTC()
	h.mustPost(alertPayload("api", "firing", started), "")
	h.settle()
	h.mustPost(alertPayload("api", "resolved", started), "")
	h.settle()
	state := func() *incident.Incident {
		p.mu.RLock()
		defer p.mu.RUnlock()
		all := p.book.Incidents("all")
		if len(all) != 1 {
			t.Fatalf("incidents = %d, events %+v, open %d", len(all), kindsOf(h.rec.Events()), p.book.OpenCount())
		}
		cp := *all[0]
		return &cp
	}
	if got := state().State; got != incident.StateVerifying {
		t.Fatalf("state %s after the resolve with 1/3 pods ready, want verifying", got)
	}
	start := time.Now()
	ctx := context.Background()
	steps := []struct {
		name   string
		after  time.Duration
		ready  int
		state  string
		events []string // the receivers' events so far
	}{
		{"1/3 pods ready: announced", 0, 1, incident.StateVerifying, []string{"opened", "verify_pending"}},
		{"not due again before verify_every", 10 * time.Second, 1, incident.StateVerifying, []string{"opened", "verify_pending"}},
		{"still 2/3: not announced again", 31 * time.Second, 2, incident.StateVerifying, []string{"opened", "verify_pending"}},
		{"3/3 ready: monitoring, resolved", 62 * time.Second, 3, incident.StateMonitoring, []string{"opened", "verify_pending", "resolved"}},
	}
	for _, st := range steps {
		cluster.set(st.ready)
		clockAt(p, start, st.after)
		if err := p.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		h.settle()
		inc := state()
		if inc.State != st.state {
			t.Errorf("%s: state %s, want %s", st.name, inc.State, st.state)
		}
		if got := kindsOf(h.rec.Events()); !slices.Equal(got, st.events) {
			t.Errorf("%s: events %q, want %q", st.name, got, st.events)
		}
	}
	inc := state()
	if inc.Verification != "resolved, verified: pods: passed (3/3 pods ready); warning events: passed (none in the last 2m)" {
		t.Errorf("verification = %q", inc.Verification)
	}
	// The closure message, stored and sent with the resolve.
	for _, line := range []string{"✅ INCIDENT RESOLVED\nDuration: ", "\nRoot Cause: not identified\n",
		"\nFix Applied: none detected (no Kubernetes snapshot to compare)\n", "\nImpact: not measured (Prometheus not configured)\n",
		"\nStatus: resolved, verified: pods: passed (3/3 pods ready); warning events: passed (none in the last 2m)\n",
		"\nMonitoring: Continuing for 1 hour\nPost-mortem: due "} {
		if !strings.Contains(inc.Closure, line) {
			t.Errorf("closure lacks %q:\n%s", line, inc.Closure)
		}
	}
	if evs := h.rec.Events(); evs[len(evs)-1].Incident.Closure != inc.Closure {
		t.Errorf("the resolve carries closure %q", evs[len(evs)-1].Incident.Closure)
	}
	var checks []string
	for _, e := range inc.Timeline {
		if e.Kind == "check" || e.Kind == "verification" {
			checks = append(checks, e.Text)
		}
	}
	want := []string{
		"pods: failed (1/3 pods ready (1 available))", "warning events: passed (none in the last 2m)", "health: not checked (no health probe)", "error ratio: not checked (no error_ratio query)",
		"alerts resolved, recovery not verified: 1/3 pods ready (1 available)",
		// Later rounds note what changed only.
		"pods: failed (2/3 pods ready (2 available))",
		"pods: passed (3/3 pods ready)",
	}
	if !slices.Equal(checks, want) {
		t.Errorf("timeline checks\n got  %q\n want %q", checks, want)
	}
	// monitor_for (1h by default) passes quietly: closed.
	clockAt(p, start, 62*time.Second+time.Hour)
	if err := p.Sweep(); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := state().State; got != incident.StateClosed {
		t.Errorf("after monitor_for: %s, want closed", got)
	}
	if got := kindsOf(h.rec.Events()); got[len(got)-1] != "closed" {
		t.Errorf("events %q, want the closing last", got)
	}
}

// TestVerificationTimesOut: recovery never verified moves on after
// verify_timeout as "resolved, unverified: <why>".
func TestVerificationTimesOut(t *testing.T) {
	cluster := &fakeCluster{ready: 1}
	h := servingHarness(t, apiProfile(t), withVerifier(&verify.Verifier{Cluster: cluster}))
	p := h.d.Pipeline()
	started := time.Now().Add(-10 * time.Minute).UTC()
	h.mustPost(alertPayload("api", "firing", started), "")
	h.settle()
	h.mustPost(alertPayload("api", "resolved", started), "")
	h.settle()
	clockAt(p, time.Now(), 31*time.Minute)
	if err := p.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.settle()
	p.mu.RLock()
	inc := p.book.Incidents("all")[0]
	st, v := inc.State, inc.Verification
	p.mu.RUnlock()
	if st != incident.StateMonitoring || v != "resolved, unverified: 1/3 pods ready (1 available)" {
		t.Errorf("after verify_timeout: %s %q", st, v)
	}
	if got := kindsOf(h.rec.Events()); !slices.Equal(got, []string{"opened", "resolved"}) {
		t.Errorf("events %q", got)
	}
}

// TestNoVerificationSourceMovesOnAtOnce: without any check that can run
// (no cluster, probe or query), the resolve is the move to monitoring.
func TestNoVerificationSourceMovesOnAtOnce(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	started := time.Now().Add(-10 * time.Minute).UTC()
	h.mustPost(alertPayload("api", "firing", started), "")
	h.settle()
	h.mustPost(alertPayload("api", "resolved", started), "")
	h.settle()
	if got := kindsOf(h.rec.Events()); !slices.Equal(got, []string{"opened", "resolved"}) {
		t.Errorf("events %q", got)
	}
	p := h.d.Pipeline()
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Incidents("all")[0]
	if inc.State != incident.StateMonitoring || !strings.Contains(inc.Verification, "no source") {
		t.Errorf("%s %q", inc.State, inc.Verification)
	}
}

// TestCurrentEventWhileVerifying: a dead-lettered event replayed while the
// incident is verifying must not tell receivers it resolved (PagerDuty
// would resolve a page whose recovery is not verified).
func TestCurrentEventWhileVerifying(t *testing.T) {
	cluster := &fakeCluster{ready: 1}
	h := servingHarness(t, apiProfile(t), withVerifier(&verify.Verifier{Cluster: cluster}))
	started := time.Now().Add(-10 * time.Minute).UTC()
	h.mustPost(alertPayload("api", "firing", started), "")
	h.settle()
	h.mustPost(alertPayload("api", "resolved", started), "")
	h.settle()
	p := h.d.Pipeline()
	p.mu.RLock()
	id := p.book.Incidents("all")[0].ID
	p.mu.RUnlock()
	ev, ok := p.CurrentEvent(id, time.Now())
	if !ok || ev.Kind != incident.VerifyPending {
		t.Errorf("current event while verifying: %s %v, want verify_pending", ev.Kind, ok)
	}
}
