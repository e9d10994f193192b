package kube

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage/signal"
)

// TestStartFake runs the informers against the fake clientset: they list,
// watch, transform and index; the gauge follows.
func TestStartFake(t *testing.T) {
	for _, namespaces := range [][]string{nil, {"shop", "web"}} {
		client := fake.NewClientset(shop()...)
		reg := prometheus.NewRegistry()
		c := New(client, Options{Namespaces: namespaces, Registerer: reg, Now: func() time.Time { return t0 }})
		if err := testutil.CollectAndCompare(&syncCollector{c}, strings.NewReader(gaugeText(0)), "amtriage_kubernetes_informer_synced"); err != nil {
			t.Error(err)
		}
		if c.Synced() {
			t.Error("synced before Start")
		}
		if err := c.WaitForSync(context.Background()); err == nil {
			t.Error("WaitForSync before Start: no error")
		}

		ctx, cancel := context.WithCancel(context.Background())
		c.Start(ctx)
		c.Start(ctx) // again: nothing
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := c.WaitForSync(wctx); err != nil {
			t.Fatal(err)
		}
		wcancel()
		if !c.Synced() {
			t.Error("not synced after WaitForSync")
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(gaugeText(1)), "amtriage_kubernetes_informer_synced"); err != nil {
			t.Error(err)
		}
		s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
		if len(s.Pods) != 3 || s.Deployment == nil || len(s.Rollouts) != 2 || len(s.Partial) != 0 {
			t.Errorf("namespaces %v: snapshot %+v", namespaces, s)
		}
		// The informers' objects went through the transforms.
		obj, _, _ := c.setFor("shop").rss.GetIndexer().GetByKey("shop/api-7d9f")
		if a := obj.(interface{ GetAnnotations() map[string]string }).GetAnnotations(); len(a) != 1 {
			t.Errorf("replicaset annotations not stripped: %v", a)
		}
		// Only Warning events are listed.
		var fieldSelectors []string
		for _, a := range client.Actions() {
			if a.GetResource().Resource == "events" && a.GetVerb() == "list" {
				fieldSelectors = append(fieldSelectors, a.(k8stesting.ListAction).GetListRestrictions().Fields.String())
			}
		}
		if len(fieldSelectors) == 0 || fieldSelectors[0] != "type=Warning" {
			t.Errorf("event list field selectors: %q", fieldSelectors)
		}
		cancel()
		c.Shutdown()
	}
}

func gaugeText(v int) string {
	var b strings.Builder
	b.WriteString("# HELP amtriage_kubernetes_informer_synced 1 when the Kubernetes informer cache of the resource has synced, else 0.\n")
	b.WriteString("# TYPE amtriage_kubernetes_informer_synced gauge\n")
	for _, r := range []string{"deployments", "events", "pods", "replicasets"} {
		b.WriteString(`amtriage_kubernetes_informer_synced{resource="` + r + `"} ` + string(rune('0'+v)) + "\n")
	}
	return b.String()
}

func TestSource(t *testing.T) {
	c, client := testCluster(t, Options{}, shop()...)
	r := &logReactor{text: "panic: nil map"}
	r.install(c, client)
	var sources []signal.Source = []signal.Source{c}
	if sources[0].Name() != "kubernetes" {
		t.Errorf("Name = %q", sources[0].Name())
	}
	ev := signal.NewEvaluation(t0)
	svc := &rules.Service{Name: "api", Namespace: "shop", Deployment: "api"}
	for range 3 {
		sig, err := c.Signals(context.Background(), ev, &template.Alert{Labels: map[string]string{"alertname": "X"}}, svc)
		if err != nil || !sig.Reachable.Known || sig.Reachable.Value || sig.Reachable.Source != "kubernetes" {
			t.Errorf("Signals = %+v, %v", sig, err)
		}
	}
	// By labels, without a profile: the pod's deployment.
	sig, err := c.Signals(context.Background(), ev, &template.Alert{Labels: map[string]string{"namespace": "shop", "pod": "api-7d9f-1"}}, nil)
	if err != nil || !sig.Reachable.Known || sig.Reachable.Value {
		t.Errorf("Signals by pod = %+v, %v", sig, err)
	}
	sig, err = c.Signals(context.Background(), ev, &template.Alert{Labels: map[string]string{"pod": "api-7d9f-1"}}, nil)
	if err != nil || sig.Reachable.Known || sig.Reachable.Note == "" {
		t.Errorf("Signals without namespace = %+v, %v", sig, err)
	}

	s1, ok := c.SnapshotFor(context.Background(), ev, nil, svc)
	if !ok || s1.Logs == nil || s1.Logs.Lines[0] != "panic: nil map" || len(s1.Pods) != 3 {
		t.Fatalf("SnapshotFor = %+v, %v", s1, ok)
	}
	s2, _ := c.SnapshotFor(context.Background(), ev, map[string]string{"namespace": "x"}, svc)
	if s2 != s1 || r.count() != 1 {
		t.Errorf("not memoised: %p %p, %d log reads", s1, s2, r.count())
	}
	// The snapshot the signals used is not changed by the logs.
	if plain := c.snapshot(ev, Target{Namespace: "shop", Deployment: "api"}); plain.Logs != nil || plain == s1 {
		t.Errorf("shared snapshot changed")
	}
	if _, ok := c.SnapshotFor(context.Background(), ev, map[string]string{"service": "api"}, nil); ok {
		t.Error("SnapshotFor without namespace: ok")
	}

	// A new evaluation reads the caches again, the logs come from the cache.
	ev2 := signal.NewEvaluation(t0.Add(time.Minute))
	s3, _ := c.SnapshotFor(context.Background(), ev2, nil, svc)
	if s3 == s1 || s3.Logs == nil || r.count() != 1 {
		t.Errorf("second evaluation: %p %p, %d log reads", s3, s1, r.count())
	}

	// Log read failing: said in Partial.
	c2, client2 := testCluster(t, Options{}, shop()...)
	(&logReactor{err: errorString("pods \"api-7d9f-2\" not found")}).install(c2, client2)
	s4, _ := c2.SnapshotFor(context.Background(), signal.NewEvaluation(t0), nil, svc)
	if s4.Logs != nil || len(s4.Partial) != 1 || !strings.HasPrefix(s4.Partial[0], "pod logs not read: logs of pod shop/api-7d9f-2 container api") {
		t.Errorf("partial = %q", s4.Partial)
	}

	// Caches not synced and nothing found: the source could not answer.
	c3 := New(fake.NewClientset(), Options{})
	if _, err := c3.Signals(context.Background(), nil, &template.Alert{}, svc); err == nil {
		t.Error("unsynced: no error")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// The pipeline asks for signals and snapshots of several services at once:
// under -race, concurrent evaluations sharing the caches and the log cache
// must not race, and each still sees the pods and their log lines.
func TestConcurrentSignalsAndSnapshots(t *testing.T) {
	c, client := testCluster(t, Options{}, shop()...)
	r := &logReactor{text: "panic: nil map"}
	r.install(c, client)
	svc := &rules.Service{Name: "api", Namespace: "shop", Deployment: "api"}
	byPod := map[string]string{"namespace": "shop", "pod": "api-7d9f-1"}
	const evaluations, callers = 10, 8
	var wg sync.WaitGroup
	for i := range evaluations {
		ev := signal.NewEvaluation(t0.Add(time.Duration(i) * time.Second))
		for j := range callers {
			wg.Go(func() {
				labels := map[string]string(nil)
				if j%2 == 1 {
					labels = byPod
				}
				sig, err := c.Signals(context.Background(), ev, &template.Alert{Labels: labels}, svc)
				if err != nil || !sig.Reachable.Known || sig.Reachable.Value {
					t.Errorf("evaluation %d caller %d: Signals = %+v, %v", i, j, sig.Reachable, err)
				}
				s, ok := c.SnapshotFor(context.Background(), ev, labels, svc)
				if !ok || len(s.Pods) != 3 || s.Logs == nil || len(s.Logs.Lines) == 0 || s.Logs.Lines[0] != "panic: nil map" {
					t.Errorf("evaluation %d caller %d: SnapshotFor = %+v, %v", i, j, s, ok)
				}
			})
		}
	}
	wg.Wait()
	if n := r.count(); n < 1 || n > evaluations {
		t.Errorf("%d log reads for %d evaluations of one unchanged pod", n, evaluations)
	}
}
