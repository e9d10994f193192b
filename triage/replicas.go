package triage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store/pgstore"
)

// replicas is the PostgreSQL side of a daemon (README.md, "Replicas on
// PostgreSQL"): every replica takes webhooks into the shared inbox; the
// one holding the lease processes and delivers.
type replicas struct {
	log       *slog.Logger
	dsn       string // a secret: only DescribeDSN of it is ever printed
	pool      *pgxpool.Pool
	leasePool *pgxpool.Pool // its own, so renewals never queue behind store work
	store     *pgstore.Store
	elector   *pgstore.Elector
	ready     chan struct{} // closed once the schema is ready (whoever migrated)
	readyOnce sync.Once
	retryFrom time.Duration // the first wait before trying the database again
}

// Leadership timing: a killed leader is replaced within ttl + interval +
// the time to load the state; a leader cut off from the database stops
// margin before its lease expires.
const (
	leaseTTL      = 5 * time.Second
	leaseMargin   = time.Second
	leaseInterval = time.Second
	watchPoll     = time.Second
	poolSize      = 16 // unless the DSN sets pool_max_conns
)

// openReplicas creates the pools (connecting lazily: the database may be
// down at start) and checks the schema once. A schema newer than this
// build's is refused; an unreachable database is not: Serve retries.
func openReplicas(cfg *rules.PostgresConfig, log *slog.Logger, reg prometheus.Registerer) (*replicas, error) {
	dsn := string(cfg.DSN)
	// Both pools end a session idle in a transaction after
	// pgstore.DefaultIdleInTransactionTimeout (below leaseTTL - leaseMargin).
	var opts []pgstore.ConnectOption
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgx's default (4 on two cores) would queue intake behind the
		// receivers' workers and the LISTEN connection.
		opts = append(opts, pgstore.WithMaxConns(poolSize))
	}
	pool, err := pgstore.NewPool(dsn, opts...)
	if err != nil {
		return nil, err
	}
	leasePool, err := pgstore.NewPool(dsn, pgstore.WithApplicationSuffix("lease"), pgstore.WithMaxConns(2))
	if err != nil {
		pool.Close()
		return nil, err
	}
	r := &replicas{log: log, dsn: dsn, pool: pool, leasePool: leasePool, ready: make(chan struct{}), retryFrom: time.Second}
	if r.store, err = pgstore.Open(context.Background(), pool, dsn); err != nil {
		r.close()
		return nil, err
	}
	r.elector, err = pgstore.NewElector(leasePool, pgstore.ElectorOptions{
		TTL: leaseTTL, Margin: leaseMargin, Interval: leaseInterval,
		Registerer: reg, Logger: logr.FromSlogHandler(log.Handler()),
	})
	if err != nil {
		r.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.migrate(ctx); err != nil {
		var newer *pgstore.ErrSchemaNewer
		if errors.As(err, &newer) {
			r.close()
			return nil, err
		}
		log.Warn("PostgreSQL not reachable at start: webhooks get 503 and /readyz is not ready until it is; retrying",
			"postgres", pgstore.DescribeDSN(dsn), "err", err)
	}
	return r, nil
}

func (r *replicas) migrate(ctx context.Context) error {
	from, err := pgstore.Migrate(ctx, r.pool)
	if err != nil {
		var newer *pgstore.ErrSchemaNewer
		if errors.As(err, &newer) {
			return fmt.Errorf("postgres %s: %w: refusing to start", pgstore.DescribeDSN(r.dsn), err)
		}
		return fmt.Errorf("postgres %s: %w", pgstore.DescribeDSN(r.dsn), pgstore.ScrubError(r.dsn, err))
	}
	r.readyOnce.Do(func() {
		if from != pgstore.SchemaVersion {
			r.log.Info("PostgreSQL schema ready", "postgres", pgstore.DescribeDSN(r.dsn), "from", from, "to", pgstore.SchemaVersion)
		}
		close(r.ready)
	})
	return nil
}

// schemaReady reports whether the schema has been migrated.
func (r *replicas) schemaReady() bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

// health is /readyz's question: can this replica reach the database?
func (r *replicas) health(ctx context.Context) error {
	if !r.schemaReady() {
		if err := r.migrate(ctx); err != nil {
			return err
		}
	}
	return r.store.Ping(ctx)
}

// run waits for the database, then takes part in the election until ctx
// ends; lead is one term. A newer schema found meanwhile is fatal.
func (r *replicas) run(ctx context.Context, wake func(), lead func(ctx context.Context, epoch int64), fatal func(error)) {
	backoff := r.retryFrom
	for !r.schemaReady() {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.migrate(mctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var newer *pgstore.ErrSchemaNewer
		if errors.As(err, &newer) {
			fatal(err)
			return
		}
		if err != nil {
			r.log.Warn("PostgreSQL not reachable; retrying", "postgres", pgstore.DescribeDSN(r.dsn), "in", backoff.String(), "err", err)
			select { // /readyz may find the database first: go on at once
			case <-ctx.Done():
				return
			case <-r.ready:
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
	var wg sync.WaitGroup
	r.store.OnWatchError(func(err error) {
		r.log.Warn("cannot LISTEN for other replicas' webhooks; polling every second instead", "err", err)
	})
	wg.Go(func() { r.store.Watch(ctx, watchPoll, wake) })
	if err := r.elector.Run(ctx, lead); err != nil {
		r.log.Error("leader election", "err", err)
	}
	wg.Wait()
}

func (r *replicas) close() {
	if r.store != nil {
		r.store.Close()
	}
	r.pool.Close()
	r.leasePool.Close()
}

// backendGauge is amtriage_store_backend{backend}: 1 for the one in use.
func backendGauge(reg prometheus.Registerer, backend string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "amtriage_store_backend",
		Help: "The store in use (1): bbolt (embedded, one replica) or postgres (replicas with one leader)."}, []string{"backend"})
	g.WithLabelValues(backend).Set(1)
	reg.MustRegister(g)
}

// soleLeader is amtriage_leader for the embedded store: its one process
// always leads.
func soleLeader(reg prometheus.Registerer) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "amtriage_leader",
		Help: "1 while this replica is the leader (processes and delivers), else 0."})
	g.Set(1)
	reg.MustRegister(g, prometheus.NewCounter(prometheus.CounterOpts{Name: "amtriage_leader_changes_total",
		Help: "Times this replica took or lost the lead."}))
}

// lead is one term of a replica: load the state, process and deliver until
// ctx ends, then stop delivering before the elector lets the lease go.
func (d *Daemon) lead(ctx context.Context, epoch int64) {
	st := d.replicas.store
	// A newer amtriage may have migrated the schema since this one started
	// (a rolling update): this one must not write it.
	if v, err := pgstore.CurrentSchemaVersion(ctx, d.replicas.pool); err == nil && v > pgstore.SchemaVersion {
		select {
		case d.fatal <- fmt.Errorf("postgres %s: %w: refusing to lead", pgstore.DescribeDSN(d.replicas.dsn), &pgstore.ErrSchemaNewer{Database: v, Known: pgstore.SchemaVersion}):
		default:
		}
		<-ctx.Done() // Serve ends, and with it the term
		return
	}
	if err := st.Lead(ctx, epoch); err != nil {
		d.log.Error("taking the lead: reading the queues", "epoch", epoch, "err", err)
		st.Lead(context.Background(), 0)
		return
	}
	defer st.Lead(context.Background(), 0) // epoch 0 only clears: no error
	if err := d.pipeline.Lead(ctx); err != nil {
		d.log.Error("taking the lead: loading the state", "epoch", epoch, "err", err)
		return
	}
	d.log.Info("leading: processing and delivering", "epoch", epoch, "pending", d.pipeline.Pending())
	var term sync.WaitGroup
	d.workersMu.Lock()
	if d.serving { // not once a graceful shutdown has stopped the workers
		d.work, d.wg = ctx, &term
		for _, w := range d.workers {
			d.startWorker(w)
		}
	}
	d.workersMu.Unlock()
	d.wakeReceivers()
	<-ctx.Done()
	d.workersMu.Lock()
	d.work, d.wg = nil, nil
	d.workersMu.Unlock()
	term.Wait() // deliveries in flight end with ctx
	d.pipeline.Follow(d.serveCtx)
	d.log.Info("stopped leading", "epoch", epoch)
}
