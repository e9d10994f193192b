package triage

import (
	"context"
	"sync"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/triage/signal"
)

// measureParallel bounds how many source lookups (one source, one service
// profile) and diagnoses run at once.
const measureParallel = 8

// Measure asks every source about the profile of each alert, several at once,
// and keeps nothing but what the evaluation memoises: the alerts are then
// classified one by one from the memo. A chunk naming many services waits
// for a slow or hung source about once, instead of once per service, before
// anybody is paged. Alerts without a profile are skipped: only the
// Kubernetes source answers for them, from its caches.
func (t *Triager) Measure(ctx context.Context, ev *signal.Evaluation, alerts []*template.Alert) {
	if len(t.Sources) == 0 || ev == nil {
		return
	}
	seen := map[string]bool{}
	var work []func()
	for _, a := range alerts {
		svc := t.Config.MatchService(a.Labels)
		if svc == nil || seen[svc.Name] {
			continue
		}
		seen[svc.Name] = true
		for _, src := range t.Sources {
			work = append(work, func() { _, _ = src.Signals(ctx, ev, a, svc) })
		}
	}
	runBounded(measureParallel, work)
}

// runBounded runs work with at most n at a time and returns when all ended.
// A panic in one is raised again on the caller's goroutine, where the
// pipeline recovers it, instead of ending the process.
func runBounded(n int, work []func()) {
	if len(work) == 1 {
		work[0]()
		return
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var once sync.Once
	var panicked any
	for _, w := range work {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					once.Do(func() { panicked = r })
				}
				<-sem
			}()
			w()
		})
	}
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
}
