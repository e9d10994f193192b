package triage

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage/evidence"
)

// worker is one receiver's delivery loop. Its notifier can be swapped by a
// reload while envelopes stay queued in the outbox under the same name, so
// the ones waiting are delivered with the new configuration.
type worker struct {
	n    *swapNotifier
	wake chan struct{}
	stop context.CancelFunc // nil unless running: stops new deliveries
	done chan struct{}      // closed when its deliveries in flight are done
}

func newWorker(n notify.Notifier) *worker {
	w := &worker{n: &swapNotifier{name: n.Name()}, wake: make(chan struct{}, 1)}
	w.n.cur.Store(&n)
	return w
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// startWorker runs w's Deliverer until the work context ends or w is
// stopped. Call with workersMu held, while serving.
func (d *Daemon) startWorker(w *worker) {
	if d.work == nil {
		return // a standby: its workers start when it leads
	}
	ctx, cancel := context.WithCancel(d.work)
	w.stop = cancel
	done := make(chan struct{})
	w.done = done
	cfg := d.Config()
	// Stopping the worker (a reload, a graceful shutdown) lets deliveries in
	// flight finish; the work context ending (a term lost) cuts them off.
	dl := &notify.Deliverer{Queue: d.store, Notifier: w.n, Wake: w.wake, Log: d.log, Metrics: d.nmetrics, Hard: d.work,
		Concurrency: cfg.Delivery.Concurrency, MaxRetryAfter: time.Duration(cfg.Delivery.MaxRetryAfter)}
	d.wg.Go(func() {
		defer close(done)
		dl.Run(ctx)
	})
}

// swapNotifier is a receiver whose implementation a reload replaces; its
// name, the outbox queue, never changes.
type swapNotifier struct {
	name string
	cur  atomic.Pointer[notify.Notifier]
}

func (s *swapNotifier) Name() string { return s.name }

func (s *swapNotifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	return (*s.cur.Load()).Notify(ctx, ev)
}

// Methods forwards to the receiver in force, so a rate limit holds back
// only the method it names.
func (s *swapNotifier) Methods(ev *incident.Event) ([]string, bool) {
	if m, ok := (*s.cur.Load()).(notify.MethodReporter); ok {
		return m.Methods(ev)
	}
	return nil, false
}

// IsPage forwards to the receiver in force, for the webhook-to-page metric.
func (s *swapNotifier) IsPage(ev *incident.Event) bool {
	p, ok := (*s.cur.Load()).(notify.PageReporter)
	return ok && p.IsPage(ev)
}

func uniqueNames(ns []notify.Notifier) error {
	seen := map[string]bool{}
	for _, n := range ns {
		if seen[n.Name()] {
			return fmt.Errorf("two receivers are named %q: each needs its own outbox queue", n.Name())
		}
		seen[n.Name()] = true
	}
	return nil
}

// Config is the configuration in force: the one the daemon started with, or
// the last one a reload applied.
func (d *Daemon) Config() *rules.Config { return d.running.Load() }

// Reload reads the configuration again (SIGHUP, POST /-/reload) and applies
// it without dropping work: the inbox, the outbox and the open incidents
// stay; profiles, thresholds, routing, receivers, signal sources, the
// incident timers and auth change. A file that does not validate, or that
// changes a key only a restart can (listen, tls, store, intake,
// kubernetes, delivery), is refused and the running configuration stays. The
// amtriage_config_last_reload_* metrics tell the outcome.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if err := d.reload(ctx); err != nil {
		d.reloadOK.Set(0)
		d.log.Error("configuration reload refused; the running configuration stays", "errors", errorLines(err))
		return err
	}
	d.reloadOK.Set(1)
	d.reloadAt.SetToCurrentTime()
	d.log.Info("configuration reloaded", "services", len(d.Config().Services))
	return nil
}

func errorLines(err error) []string {
	var list rules.Errors
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}

func (d *Daemon) reload(ctx context.Context) error {
	if d.load == nil || d.rebuild == nil {
		return errors.New("reloading is not available in this daemon")
	}
	d.workersMu.RLock()
	serving := d.serving
	d.workersMu.RUnlock()
	if !serving {
		return errors.New("not serving (starting or shutting down); retry")
	}
	cfg, err := d.load()
	if err != nil {
		return err
	}
	old := d.Config()
	if err := restartOnly(old, cfg); err != nil {
		return err
	}
	notifiers, enrich, err := d.rebuild(cfg, d.store)
	if err != nil {
		return err
	}
	if err := uniqueNames(notifiers); err != nil {
		return err
	}
	if len(notifiers) == 0 {
		return errors.New("no receivers configured")
	}
	if enrich == nil {
		enrich = &Enrichment{}
	}
	web, err := newWebPages(cfg, d.pipeline, d.store, d.now, d.log)
	if err != nil {
		return err
	}
	names := make([]string, len(notifiers))
	for i, n := range notifiers {
		names[i] = n.Name()
	}
	sources := append(slices.Clone(d.sources), enrich.Sources...)
	// The pipeline first: from here new events fan out to the new
	// receivers' queues; their workers start just below and find them.
	set := settingsFor(cfg, &Triager{Config: cfg, Sources: sources}, enrich.Enricher, names)
	set.Verifier = enrich.Verifier
	set.Takes = takesOf(notifiers)
	if err := d.pipeline.Reconfigure(ctx, set); err != nil {
		return fmt.Errorf("applying the configuration: %w", err)
	}
	if d.evidence != nil { // none configured now: declarations are not collected
		var s evidence.Sources
		if enrich.Evidence != nil {
			s = *enrich.Evidence
		}
		d.evidence.SetSources(s)
	}
	d.swapWorkers(notifiers)
	d.api.setAuth(cfg.Auth)
	d.api.setPagerDutySecret(string(cfg.PagerDuty.WebhookSecret))
	d.api.setSlackSecret(string(cfg.Slack.SigningSecret))
	d.api.setReceivers(names)
	d.api.setActions(cfg)
	d.api.web.Store(web)
	d.running.Store(cfg)
	d.wakeReceivers()
	return nil
}

// swapWorkers gives each receiver that stays its new implementation, starts
// the new ones and stops the removed ones. A removed receiver's queued
// events stay in the outbox: they are delivered if it comes back.
func (d *Daemon) swapWorkers(ns []notify.Notifier) {
	d.workersMu.Lock()
	defer d.workersMu.Unlock()
	byName := map[string]*worker{}
	for _, w := range d.workers {
		byName[w.n.name] = w
	}
	var next []*worker
	for _, n := range ns {
		if w, ok := byName[n.Name()]; ok {
			w.n.cur.Store(&n)
			delete(byName, n.Name())
			next = append(next, w)
			continue
		}
		w := newWorker(n)
		d.startWorker(w)
		next = append(next, w)
		d.log.Info("receiver added by reload", "receiver", n.Name())
	}
	for name, w := range byName {
		if w.stop != nil {
			w.stop()
		}
		d.log.Warn("receiver removed by reload: its queued notifications stay in the outbox until it is configured again", "receiver", name)
	}
	d.workers = next
}

// restartOnly refuses changes to keys read once at start: the listener, the
// TLS certificate, the store, the intake's buffers, the Kubernetes
// informers and the delivery workers' pool.
func restartOnly(old, cfg *rules.Config) error {
	var errs rules.Errors
	for _, k := range []struct {
		key      string
		was, now any
	}{
		{"listen", old.Listen, cfg.Listen},
		{"tls", old.TLS, cfg.TLS},
		{"store", old.Store, cfg.Store},
		{"intake", old.Intake, cfg.Intake},
		{"kubernetes", old.Kubernetes, cfg.Kubernetes},
		{"delivery", old.Delivery, cfg.Delivery},
	} {
		if !reflect.DeepEqual(k.was, k.now) {
			errs = append(errs, &rules.KeyError{Key: k.key, Err: errors.New("cannot change on reload; restart amtriage to apply it (or put back the running value)")})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// takesOf says which of ns take an event kind (notify.Takes), by name.
func takesOf(ns []notify.Notifier) func(string, incident.EventKind) bool {
	byName := make(map[string]notify.Notifier, len(ns))
	for _, n := range ns {
		byName[n.Name()] = n
	}
	return func(receiver string, kind incident.EventKind) bool {
		n, ok := byName[receiver]
		return !ok || notify.Takes(n, kind)
	}
}
