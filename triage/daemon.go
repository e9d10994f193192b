package triage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
)

// Daemon wires the store, intake, pipeline, receivers and HTTP API together.
type Daemon struct {
	cfg             *rules.Config
	log             *slog.Logger
	store           *Store
	committer       *Committer
	pipeline        *Pipeline
	api             *API
	registry        *prometheus.Registry
	notifiers       []notify.Notifier
	wakes           []chan struct{}
	nmetrics        *notify.Metrics
	ShutdownTimeout time.Duration
	enrichRun       func(ctx context.Context)
}

func reevaluateEvery(cfg *rules.Config) map[severity.Level]time.Duration {
	every := map[severity.Level]time.Duration{}
	for sev, d := range cfg.Incidents.Reevaluate {
		every[severity.Level(sev)] = time.Duration(d)
	}
	return every
}

// Options are the parts of a Daemon that are not configuration.
type Options struct {
	Log       *slog.Logger
	Notifiers []notify.Notifier // receivers; each gets its own outbox queue
	// Receivers, when set, builds more receivers once the store is open, for
	// those that keep per-incident state (Slack message ts, Grafana ids).
	Receivers func(state notify.ReceiverState) ([]notify.Notifier, error)
	Sources   []SignalSource
	// Enrichment, when set, builds the measuring sources and the diagnosis
	// once the metrics registry exists; its Run (informers) runs with Serve.
	Enrichment func(reg prometheus.Registerer) (*Enrichment, error)
	Now        func() time.Time
	// BodyGrace is how long a webhook body may take before
	// intake.min_body_rate applies; default 10s.
	BodyGrace time.Duration
}

// Enrichment is what measures and diagnoses beyond the alert itself.
type Enrichment struct {
	Sources  []SignalSource
	Enricher Enricher
	// Run, if set, runs background work (Kubernetes informers) until ctx ends.
	Run func(ctx context.Context)
}

// NewDaemon opens the store and restores the incident state.
func NewDaemon(cfg *rules.Config, o Options) (*Daemon, error) {
	store, err := OpenStore(cfg.Store.Path)
	if err != nil {
		return nil, err
	}
	if o.Receivers != nil {
		more, err := o.Receivers(store)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("receivers: %w", err)
		}
		o.Notifiers = append(append([]notify.Notifier(nil), o.Notifiers...), more...)
	}
	if len(o.Notifiers) == 0 {
		store.Close()
		return nil, errors.New("no receivers configured")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &Daemon{cfg: cfg, log: o.Log, store: store, registry: reg, notifiers: o.Notifiers, ShutdownTimeout: 25 * time.Second}
	metrics := NewMetrics(reg)
	d.nmetrics = notify.NewMetrics(reg)
	enrich := &Enrichment{Sources: o.Sources}
	if o.Enrichment != nil {
		if enrich, err = o.Enrichment(reg); err != nil {
			store.Close()
			return nil, fmt.Errorf("signal sources: %w", err)
		}
		enrich.Sources = append(append([]SignalSource(nil), o.Sources...), enrich.Sources...)
	}
	d.enrichRun = enrich.Run
	names := make([]string, len(o.Notifiers))
	for i, n := range o.Notifiers {
		names[i] = n.Name()
		d.wakes = append(d.wakes, make(chan struct{}, 1))
	}
	d.pipeline, err = NewPipeline(PipelineOptions{
		Store: store, Log: o.Log, Metrics: metrics,
		Triager:  &Triager{Config: cfg, Sources: enrich.Sources},
		Enricher: enrich.Enricher, Reevaluate: reevaluateEvery(cfg),
		Receivers: names, OnEvents: d.wakeReceivers,
		StaleAfter: time.Duration(cfg.Incidents.StaleAfter), Retention: time.Duration(cfg.Incidents.Retention), Now: o.Now,
		StatusEvery: map[severity.Level]time.Duration{1: time.Duration(cfg.Incidents.Sev1Updates), 2: time.Duration(cfg.Incidents.Sev2Updates)},
		Heartbeat:   cfg.Heartbeat.Alertname, MissingAfter: time.Duration(cfg.Heartbeat.MissingAfter),
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	d.committer = NewCommitter(store, metrics, cfg.Intake.MaxPending, d.pipeline.Committed)
	d.api = &API{
		Committer: d.committer, Pipeline: d.pipeline, Store: store, Receivers: names, OnReplay: d.wakeReceivers,
		Metrics: metrics, Registry: reg, Log: o.Log,
		Auth: cfg.Auth, MaxBodyBytes: cfg.Intake.MaxBodyBytes, MinBodyRate: cfg.Intake.MinBodyRate, BodyGrace: o.BodyGrace,
		Inflight: NewByteBudget(max(cfg.Intake.MaxInflightBytes, cfg.Intake.MaxBodyBytes)),
	}
	store.OnDeadLetter = func(dl *DeadLetter) {
		o.Log.Warn("dead letter stored: GET /api/deadletters lists it, POST /api/deadletters/{id}/replay replays it",
			"id", dl.ID, "kind", dl.Kind, "queue", dl.Queue, "incident", dl.Incident, "err", dl.Error)
	}
	reg.MustRegister(deadLetterCollector{store})
	return d, nil
}

func (d *Daemon) wakeReceivers() {
	for _, w := range d.wakes {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Handler is the HTTP API, for tests and embedding.
func (d *Daemon) Handler() http.Handler { return d.api.Handler() }

// Pipeline exposes the incident state, for tests and the CLI.
func (d *Daemon) Pipeline() *Pipeline { return d.pipeline }

// Serve runs until ctx ends, then shuts down gracefully: new webhooks get 503,
// in-flight ones finish their durable commit, and the store is closed.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	if d.cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(d.cfg.TLS.CertFile, d.cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	srv := &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if d.enrichRun != nil {
		wg.Go(func() { d.enrichRun(workCtx) })
	}
	wg.Go(func() { d.pipeline.Run(workCtx) })
	for i, n := range d.notifiers {
		dl := &notify.Deliverer{Queue: d.store, Notifier: n, Wake: d.wakes[i], Log: d.log, Metrics: d.nmetrics,
			Concurrency: d.cfg.Delivery.Concurrency, MaxRetryAfter: time.Duration(d.cfg.Delivery.MaxRetryAfter)}
		wg.Go(func() { dl.Run(workCtx) })
	}
	d.wakeReceivers() // deliver what a previous run left queued

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	d.log.Info("amtriage listening", "addr", ln.Addr().String(), "store", d.cfg.Store.Path)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	}
	// The drain: the listener keeps answering (new webhooks 503, so
	// Alertmanager retries elsewhere or later; probes say not ready) while
	// webhooks already being read are stored, the pipeline finishes the
	// commit in hand and the receivers stop. Only then does it close.
	d.log.Info("shutting down: draining in-flight requests")
	d.api.SetDraining()
	sctx, cancel := context.WithTimeout(context.Background(), d.ShutdownTimeout)
	defer cancel()
	if werr := d.api.WaitWebhooks(sctx); werr != nil {
		d.log.Warn("webhooks still in flight at the shutdown timeout", "err", werr)
	}
	d.committer.Close()
	stopWork()
	wg.Wait()
	if serr := srv.Shutdown(sctx); serr != nil {
		d.log.Warn("http shutdown", "err", serr)
	}
	if cerr := d.store.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	d.log.Info("stopped")
	return err
}

// Close releases the store without serving (for callers that never Serve).
func (d *Daemon) Close() error {
	d.committer.Close()
	return d.store.Close()
}
