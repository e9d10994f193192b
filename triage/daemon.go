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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/store/pgstore"
	"github.com/amtriage/amtriage/triage/evidence"
	"github.com/amtriage/amtriage/triage/verify"
)

// Daemon wires the store, intake, pipeline, receivers and HTTP API together.
type Daemon struct {
	cfg             *rules.Config
	log             *slog.Logger
	now             func() time.Time // Options.Now, for what a reload rebuilds
	store           store.Store
	replicas        *replicas    // nil: the embedded store, one process
	closeStore      func() error // closes the store (and the replicas' pools)
	serveCtx        context.Context
	serving         bool       // guarded by workersMu: reloads need a running daemon
	fatal           chan error // ends Serve: a replica that must not go on
	committer       *Committer
	pipeline        *Pipeline
	api             *API
	registry        *prometheus.Registry
	nmetrics        *notify.Metrics
	ShutdownTimeout time.Duration
	enrichRun       func(ctx context.Context)
	sources         []SignalSource // Options.Sources, kept across reloads

	// workersMu guards workers, and work/wg while Serve runs: a reload
	// starts and stops receivers' workers.
	workersMu sync.RWMutex
	workers   []*worker
	work      context.Context // nil unless serving
	wg        *sync.WaitGroup

	reloadMu sync.Mutex // one reload at a time
	load     func() (*rules.Config, error)
	rebuild  Rebuild
	reloadOK prometheus.Gauge
	reloadAt prometheus.Gauge
	running  atomic.Pointer[rules.Config] // the configuration in force

	evidence *evidence.Collector // nil: no evidence source configured
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
	// Load and Rebuild make Reload (SIGHUP, POST /-/reload) possible: Load
	// reads and validates the configuration again, Rebuild builds its
	// receivers and sources. Without them Reload is refused.
	Load    func() (*rules.Config, error)
	Rebuild Rebuild
	Now     func() time.Time
	// BodyGrace is how long a webhook body may take before
	// intake.min_body_rate applies; default 10s.
	BodyGrace time.Duration
}

// Rebuild builds, for a reloaded configuration, every receiver (the ones
// Options.Notifiers and Options.Receivers gave at start) and the measuring
// sources (Options.Sources are kept). The Enrichment's Run is ignored:
// background work started with Serve keeps running.
type Rebuild func(cfg *rules.Config, state notify.ReceiverState) ([]notify.Notifier, *Enrichment, error)

// Enrichment is what measures and diagnoses beyond the alert itself.
type Enrichment struct {
	Sources  []SignalSource
	Enricher Enricher
	// Verifier checks recovery once alerts resolve (nil: nothing to check with).
	Verifier *verify.Verifier
	// Run, if set, runs background work (Kubernetes informers) until ctx ends.
	Run func(ctx context.Context)
	// Evidence, if set, is where a Sev 1–2 declaration's evidence is
	// gathered from (triage/evidence); nil: none is gathered.
	Evidence *evidence.Sources
}

// NewDaemon opens the store and restores the incident state.
func NewDaemon(cfg *rules.Config, o Options) (*Daemon, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var st store.Store
	var reps *replicas
	if pg := cfg.Store.Postgres; pg != nil {
		var err error
		if reps, err = openReplicas(pg, o.Log, reg); err != nil {
			return nil, err
		}
		st = reps.store
		backendGauge(reg, "postgres")
	} else {
		bolt, err := boltstore.OpenStore(cfg.Store.Path)
		if err != nil {
			return nil, err
		}
		st = bolt
		backendGauge(reg, "bbolt")
		soleLeader(reg)
	}
	// The store's Close; with replicas the pools go too.
	closeStore := func() error {
		err := st.Close()
		if reps != nil {
			reps.close()
		}
		return err
	}
	d, err := newDaemon(cfg, o, reg, st, reps)
	if err != nil {
		closeStore()
		return nil, err
	}
	d.closeStore = closeStore
	return d, nil
}

func newDaemon(cfg *rules.Config, o Options, reg *prometheus.Registry, st store.Store, reps *replicas) (*Daemon, error) {
	var err error
	if o.Receivers != nil {
		more, err := o.Receivers(st)
		if err != nil {
			return nil, fmt.Errorf("receivers: %w", err)
		}
		o.Notifiers = append(append([]notify.Notifier(nil), o.Notifiers...), more...)
	}
	if len(o.Notifiers) == 0 {
		return nil, errors.New("no receivers configured")
	}
	if err := uniqueNames(o.Notifiers); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: o.Log, store: st, replicas: reps, registry: reg, ShutdownTimeout: 25 * time.Second,
		sources: o.Sources, load: o.Load, rebuild: o.Rebuild}
	d.running.Store(cfg)
	d.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "amtriage_config_last_reload_successful",
		Help: "Whether the last configuration reload attempt was successful (1; 0 when it was refused)."})
	d.reloadAt = prometheus.NewGauge(prometheus.GaugeOpts{Name: "amtriage_config_last_reload_success_timestamp_seconds",
		Help: "Timestamp of the last successful configuration load (the start, or a reload)."})
	reg.MustRegister(d.reloadOK, d.reloadAt)
	d.reloadOK.Set(1)
	d.reloadAt.SetToCurrentTime()
	metrics := NewMetrics(reg)
	d.nmetrics = notify.NewMetrics(reg)
	enrich := &Enrichment{Sources: o.Sources}
	if o.Enrichment != nil {
		if enrich, err = o.Enrichment(reg); err != nil {
			return nil, fmt.Errorf("signal sources: %w", err)
		}
		enrich.Sources = append(append([]SignalSource(nil), o.Sources...), enrich.Sources...)
	}
	d.enrichRun = enrich.Run
	names := make([]string, len(o.Notifiers))
	for i, n := range o.Notifiers {
		names[i] = n.Name()
		d.workers = append(d.workers, newWorker(n))
	}
	set := settingsFor(cfg, &Triager{Config: cfg, Sources: enrich.Sources}, enrich.Enricher, names)
	set.Takes = takesOf(o.Notifiers)
	var onCommitted func([]*incident.Changes)
	if enrich.Evidence != nil {
		d.evidence = evidence.New(evidence.Options{Sources: *enrich.Evidence, Store: st, Metrics: evidence.NewMetrics(reg), Log: o.Log, Now: o.Now})
		onCommitted = d.offerEvidence
	}
	set.Verifier = enrich.Verifier
	d.pipeline, err = NewPipeline(PipelineOptions{
		Store: st, Log: o.Log, Metrics: metrics,
		Triager: set.Triager, Enricher: set.Enricher, Reevaluate: set.Reevaluate,
		Receivers: names, Takes: set.Takes, OnEvents: d.wakeReceivers, OnCommitted: onCommitted,
		StaleAfter: set.StaleAfter, Retention: set.Retention, Now: o.Now, StatusEvery: set.StatusEvery,
		Heartbeat: set.Heartbeat, MissingAfter: set.MissingAfter,
		EscalateAfter: set.EscalateAfter,
		MonitorFor:    set.MonitorFor, VerifyEvery: set.VerifyEvery, VerifyTimeout: set.VerifyTimeout, Verifier: set.Verifier,
		Standby: reps != nil,
	})
	if err != nil {
		return nil, err
	}
	d.committer = NewCommitter(st, metrics, cfg.Intake.MaxPending, d.pipeline.Committed)
	d.api = &API{
		Committer: d.committer, Pipeline: d.pipeline, Store: st, Receivers: names, OnReplay: d.wakeReceivers,
		Metrics: metrics, Registry: reg, Log: o.Log, Reload: d.Reload,
		Auth: cfg.Auth, MaxBodyBytes: cfg.Intake.MaxBodyBytes, MinBodyRate: cfg.Intake.MinBodyRate, BodyGrace: o.BodyGrace,
		Inflight: NewByteBudget(max(cfg.Intake.MaxInflightBytes, cfg.Intake.MaxBodyBytes)),
	}
	if reps != nil {
		d.api.StoreHealth = reps.health
	}
	d.api.setPagerDutySecret(string(cfg.PagerDuty.WebhookSecret))
	d.api.setSlackSecret(string(cfg.Slack.SigningSecret))
	d.api.setActions(cfg)
	d.now = o.Now
	web, err := newWebPages(cfg, d.pipeline, st, o.Now, o.Log)
	if err != nil {
		return nil, err
	}
	d.api.web.Store(web)
	d.pipeline.answer = d.api.replyLater
	st.OnDeadLetter(func(dl *store.DeadLetter) {
		o.Log.Warn("dead letter stored: GET /api/deadletters lists it, POST /api/deadletters/{id}/replay replays it",
			"id", dl.ID, "kind", dl.Kind, "queue", dl.Queue, "incident", dl.Incident, "err", dl.Error)
	})
	reg.MustRegister(deadLetterCollector{st})
	return d, nil
}

// settingsFor is what the pipeline takes from a configuration, at start
// and on each reload.
func settingsFor(cfg *rules.Config, t *Triager, e Enricher, receivers []string) Settings {
	return Settings{
		Triager: t, Enricher: e, Receivers: receivers,
		StaleAfter: time.Duration(cfg.Incidents.StaleAfter), Retention: time.Duration(cfg.Incidents.Retention),
		StatusEvery: map[severity.Level]time.Duration{1: time.Duration(cfg.Incidents.Sev1Updates), 2: time.Duration(cfg.Incidents.Sev2Updates)},
		Reevaluate:  reevaluateEvery(cfg),
		Heartbeat:   cfg.Heartbeat.Alertname, MissingAfter: time.Duration(cfg.Heartbeat.MissingAfter),
		EscalateAfter: time.Duration(cfg.Escalation.After),
		MonitorFor:    time.Duration(cfg.Incidents.MonitorFor), VerifyEvery: time.Duration(cfg.Incidents.VerifyEvery),
		VerifyTimeout: time.Duration(cfg.Incidents.VerifyTimeout),
	}
}

// offerEvidence queues the Sev 1–2 declarations of a commit for evidence.
func (d *Daemon) offerEvidence(changes []*incident.Changes) {
	for _, ch := range changes {
		d.evidence.Offer(ch.Events)
	}
}

func (d *Daemon) wakeReceivers() {
	d.workersMu.RLock()
	defer d.workersMu.RUnlock()
	for _, w := range d.workers {
		w.poke()
	}
}

// Handler is the HTTP API, for tests and embedding.
func (d *Daemon) Handler() http.Handler { return d.api.Handler() }

// Pipeline exposes the incident state, for tests and the CLI.
func (d *Daemon) Pipeline() *Pipeline { return d.pipeline }

// AppendAction stores an action (an action receiver's outcome) in the
// inbox, as the endpoints do: the leader applies it in order.
func (d *Daemon) AppendAction(ctx context.Context, a *actions.Action) error {
	return d.committer.AppendAction(ctx, a)
}

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
	if d.evidence != nil {
		wg.Go(func() { d.evidence.Run(workCtx) })
	}
	wg.Go(func() { d.pipeline.Run(workCtx) })
	d.fatal = make(chan error, 1)
	d.workersMu.Lock()
	d.serving, d.serveCtx = true, workCtx
	if d.replicas == nil { // one process: it leads for as long as it serves
		d.work, d.wg = workCtx, &wg
		for _, w := range d.workers {
			d.startWorker(w)
		}
	}
	d.workersMu.Unlock()
	if d.replicas != nil {
		wake := func() { d.pipeline.Wake(); d.wakeReceivers() }
		fatal := func(err error) {
			select {
			case d.fatal <- err:
			default:
			}
		}
		wg.Go(func() { d.replicas.run(workCtx, wake, d.lead, fatal) })
	}
	d.wakeReceivers() // deliver what a previous run left queued

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if d.replicas != nil {
		d.log.Info("amtriage listening", "addr", ln.Addr().String(), "store", "postgres", "postgres", pgstore.DescribeDSN(d.replicas.dsn))
	} else {
		d.log.Info("amtriage listening", "addr", ln.Addr().String(), "store", d.cfg.Store.Path)
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	case err = <-d.fatal:
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
	d.reloadMu.Lock() // no reload may start workers from here on
	// Deliveries in flight finish before the work stops (and, with
	// replicas, before the lease goes to the next leader): one cut off
	// might have reached the receiver, to be repeated by the next start.
	d.workersMu.Lock()
	d.serving = false // nor may a new term start them
	var inFlight []chan struct{}
	for _, w := range d.workers {
		if w.stop != nil {
			w.stop()
			inFlight = append(inFlight, w.done)
		}
	}
	d.workersMu.Unlock()
	d.reloadMu.Unlock()
	for _, done := range inFlight {
		select {
		case <-done:
		case <-sctx.Done():
		}
	}
	d.workersMu.Lock()
	d.work = nil
	d.workersMu.Unlock()
	stopWork()
	wg.Wait()
	if serr := srv.Shutdown(sctx); serr != nil {
		d.log.Warn("http shutdown", "err", serr)
	}
	if cerr := d.closeStore(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	d.log.Info("stopped")
	return err
}

// Close releases the store without serving (for callers that never Serve).
func (d *Daemon) Close() error {
	d.committer.Close()
	return d.closeStore()
}
