package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amtriage/amtriage/internal/pgtest"
)

// fast makes terms short enough for tests: a leader that cannot renew stops
// after 1.3s, the database frees its lease after 2s.
func fast(t *testing.T, holder string) ElectorOptions {
	return ElectorOptions{Holder: holder, TTL: 2 * time.Second, Margin: 700 * time.Millisecond,
		Interval: 100 * time.Millisecond, RenewTimeout: 300 * time.Millisecond,
		Logger: testr.New(t).WithName(holder)}
}

// journal records, in order, when each replica's terms begin and end.
type journal struct {
	mu     sync.Mutex
	events []string
	epochs map[string]int64
}

func newJournal() *journal { return &journal{epochs: map[string]int64{}} }

func (j *journal) add(ev string) {
	j.mu.Lock()
	j.events = append(j.events, ev)
	j.mu.Unlock()
}

func (j *journal) snapshot() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

func (j *journal) has(ev string) bool { return slices.Contains(j.snapshot(), ev) }

// lead is a term that records its start and end and does nothing else.
func (j *journal) lead(name string) func(context.Context, int64) {
	return func(ctx context.Context, epoch int64) {
		j.mu.Lock()
		j.epochs[name] = epoch
		j.events = append(j.events, name+" leads")
		j.mu.Unlock()
		<-ctx.Done()
		j.add(name + " stops")
	}
}

func (j *journal) epoch(name string) int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.epochs[name]
}

// before fails the test unless event a was recorded, and before b.
func (j *journal) before(t *testing.T, a, b string) {
	t.Helper()
	ev := j.snapshot()
	ia, ib := slices.Index(ev, a), slices.Index(ev, b)
	if ia < 0 || ib < 0 || ia > ib {
		t.Errorf("want %q before %q; events %v", a, b, ev)
	}
}

// replica is one running Elector.
type replica struct {
	e      *Elector
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startReplica(t *testing.T, db DB, opts ElectorOptions, lead func(context.Context, int64)) *replica {
	t.Helper()
	r := &replica{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	opts.Registerer = r.reg
	e, err := NewElector(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- e.Run(ctx, lead) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends the replica's Run and waits for it; again, it does nothing.
func (r *replica) stop() {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			panic(err)
		}
	})
}

func (r *replica) metrics(t *testing.T) (leader, changes float64) {
	t.Helper()
	return testutil.ToFloat64(r.e.leaderGauge), testutil.ToFloat64(r.e.changes)
}

// waitFor polls cond until it holds; the timeout only bounds a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestElectorRefusesOptionsThatCannotFence(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts ElectorOptions
		want string
	}{
		{"margin not below ttl", ElectorOptions{TTL: time.Second, Margin: time.Second}, "margin"},
		{"negative margin", ElectorOptions{TTL: time.Second, Margin: -time.Second}, "margin"},
		{"no renewal within a term", ElectorOptions{TTL: 2 * time.Second, Margin: time.Second, Interval: time.Second}, "interval"},
	} {
		if _, err := NewElector(nil, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewElector = %v, want an error about the %s", tt.name, err, tt.want)
		}
	}
}

func TestExactlyOneOfTwoReplicasLeads(t *testing.T) {
	p, _ := migrated(t)
	j := newJournal()
	a := startReplica(t, p, fast(t, "A"), j.lead("A"))
	b := startReplica(t, p, fast(t, "B"), j.lead("B"))
	waitFor(t, "a replica leads", func() bool { return a.e.IsLeader() || b.e.IsLeader() })
	// Watch a while: several renewals, longer than a lease.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if a.e.IsLeader() == b.e.IsLeader() {
			t.Fatalf("A leads %v, B leads %v: want exactly one", a.e.IsLeader(), b.e.IsLeader())
		}
	}
	if ev := j.snapshot(); len(ev) != 1 {
		t.Errorf("events %v, want one term begun and none ended", ev)
	}
	leader, standby := a, b
	if b.e.IsLeader() {
		leader, standby = b, a
	}
	if l, c := leader.metrics(t); l != 1 || c != 1 {
		t.Errorf("leader: amtriage_leader %v, changes %v; want 1, 1", l, c)
	}
	if l, c := standby.metrics(t); l != 0 || c != 0 {
		t.Errorf("standby: amtriage_leader %v, changes %v; want 0, 0", l, c)
	}
	if leader.e.Epoch() != 1 || standby.e.Epoch() != 0 {
		t.Errorf("epochs: leader %d, standby %d; want 1, 0", leader.e.Epoch(), standby.e.Epoch())
	}
	if n, err := testutil.GatherAndCount(leader.reg, "amtriage_leader", "amtriage_leader_changes_total"); err != nil || n != 2 {
		t.Errorf("registered metrics: %d, %v; want both", n, err)
	}
}

// A rolling update: the leader shuts down and its successor takes over at
// once, not after the lease expires (an hour here).
func TestAReleasedLeaseIsTakenAtOnce(t *testing.T) {
	p, _ := migrated(t)
	j := newJournal()
	opts := func(h string) ElectorOptions {
		o := fast(t, h)
		o.TTL, o.Margin = time.Hour, time.Minute
		return o
	}
	a := startReplica(t, p, opts("A"), j.lead("A"))
	waitFor(t, "A leads", func() bool { return j.has("A leads") })
	b := startReplica(t, p, opts("B"), j.lead("B"))
	a.stop()
	waitFor(t, "B leads", func() bool { return j.has("B leads") })
	j.before(t, "A stops", "B leads")
	if l, c := a.metrics(t); l != 0 || c != 2 {
		t.Errorf("A after shutdown: amtriage_leader %v, changes %v; want 0, 2 (took, lost)", l, c)
	}
	if !b.e.IsLeader() || b.e.Epoch() != j.epoch("A")+1 {
		t.Errorf("B leads %v at epoch %d, want epoch %d", b.e.IsLeader(), b.e.Epoch(), j.epoch("A")+1)
	}
}

// A leader that dies without releasing keeps its lease until it expires;
// then the standby takes over, and the dead leader's epoch is fenced.
func TestADeadLeaderIsReplacedWhenItsLeaseExpires(t *testing.T) {
	for _, tt := range []struct {
		name string
		kill func(a *replica, aPool *pgxpool.Pool)
	}{
		{"killed: no release", func(a *replica, _ *pgxpool.Pool) { a.stop() }},
		{"its connections gone", func(_ *replica, aPool *pgxpool.Pool) { aPool.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			admin, dsn := migrated(t)
			aPool := pool(t, dsn)
			j := newJournal()
			optsA := fast(t, "A")
			optsA.noRelease = true
			a := startReplica(t, aPool, optsA, j.lead("A"))
			waitFor(t, "A leads", func() bool { return j.has("A leads") })
			tt.kill(a, aPool)
			waitFor(t, "A stops", func() bool { return j.has("A stops") })
			if s, err := ReadLease(context.Background(), admin); err != nil || s.Holder != "A" || s.Expired {
				t.Fatalf("lease after A died: %+v, %v; want A's, not yet expired", s, err)
			}
			startReplica(t, admin, fast(t, "B"), j.lead("B"))
			waitFor(t, "B leads", func() bool { return j.has("B leads") })
			j.before(t, "A stops", "B leads")
			if got, want := j.epoch("B"), j.epoch("A")+1; got != want {
				t.Errorf("B's epoch %d, want %d", got, want)
			}
			if err := fenced(context.Background(), admin, j.epoch("A")); !errors.Is(err, ErrDeposed) {
				t.Errorf("a write at the dead leader's epoch: %v, want ErrDeposed", err)
			}
		})
	}
}

// The partition: the leader loses its database, the standby does not. The
// leader must stop before the standby starts (no two leaders at once), and
// a write it fenced with its old epoch fails. Cut: its connections drop and
// every renewal fails at once. Stall: its renewals hang, and only their
// deadline, capped by the term's end, frees it.
func TestAPartitionedLeaderStopsBeforeTheStandbyLeads(t *testing.T) {
	for _, tt := range []struct {
		name      string
		partition func(*pgtest.Proxy)
	}{
		{"connections dropped", (*pgtest.Proxy).Cut},
		{"packets dropped", (*pgtest.Proxy).Stall},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := pgtest.Shared(t)
			dsn := srv.NewDatabase(t)
			admin := pool(t, dsn)
			if _, err := Migrate(context.Background(), admin); err != nil {
				t.Fatal(err)
			}
			proxy := pgtest.NewProxy(t, srv.Addr())
			aPool := pool(t, pgtest.WithAddr(dsn, proxy.Addr()), WithApplicationSuffix("A"))

			j := newJournal()
			a := startReplica(t, aPool, fast(t, "A"), j.lead("A"))
			waitFor(t, "A leads", func() bool { return j.has("A leads") })
			startReplica(t, admin, fast(t, "B"), j.lead("B"))
			// Partition after A has renewed, so that its term runs on a
			// renewal, not on the acquisition.
			first, err := ReadLease(context.Background(), admin)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "A renews", func() bool {
				s, err := ReadLease(context.Background(), admin)
				return err == nil && s.ExpiresAt.After(first.ExpiresAt)
			})

			tt.partition(proxy)
			waitFor(t, "B leads", func() bool { return j.has("B leads") })
			j.before(t, "A stops", "B leads")
			if a.e.IsLeader() {
				t.Error("A still claims the lead")
			}
			// A's late write, had it reached the database: fenced.
			if err := fenced(context.Background(), admin, j.epoch("A")); !errors.Is(err, ErrDeposed) {
				t.Errorf("a write at A's epoch after the takeover: %v, want ErrDeposed", err)
			}

			// A's database comes back: A stays a standby.
			proxy.Restore()
			time.Sleep(500 * time.Millisecond) // several acquisition attempts
			if a.e.IsLeader() {
				t.Error("A took the lead back from a healthy B")
			}
			if ev := j.snapshot(); fmt.Sprint(ev) != "[A leads A stops B leads]" {
				t.Errorf("events %v", ev)
			}
		})
	}
}

// The lease's errors reach the log on every outage: they name the server,
// never the password.
func TestElectorLogsNeverShowThePassword(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := pgtest.PasswordDSN(srv.NewDatabase(t))
	admin := pool(t, dsn)
	if _, err := Migrate(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, srv.Addr())
	aPool := pool(t, pgtest.WithAddr(dsn, proxy.Addr()))

	var mu sync.Mutex
	var logs strings.Builder
	opts := fast(t, "A")
	opts.Logger = funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{})
	j := newJournal()
	startReplica(t, aPool, opts, j.lead("A"))
	waitFor(t, "A leads", func() bool { return j.has("A leads") })
	proxy.Cut()
	waitFor(t, "A stops", func() bool { return j.has("A stops") })

	mu.Lock()
	text := logs.String()
	mu.Unlock()
	if !strings.Contains(text, "renew the lease") || !strings.Contains(text, pgtest.PasswordUser) {
		t.Fatalf("the log lacks the failed renewals naming the user:\n%s", text)
	}
	if strings.Contains(text, pgtest.Password) {
		t.Errorf("the log contains the password:\n%s", text)
	}
}

// An administrator (or a failover of the database's proxy) ends the
// leader's backend: the pool reconnects and the leader renews on; a blip
// shorter than the term is no failover.
func TestALeaderWhoseBackendIsTerminatedRenewsOn(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := srv.NewDatabase(t)
	admin := pool(t, dsn)
	if _, err := Migrate(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	aPool := pool(t, dsn, WithApplicationSuffix("A"))
	j := newJournal()
	a := startReplica(t, aPool, fast(t, "A"), j.lead("A"))
	waitFor(t, "A leads", func() bool { return j.has("A leads") })
	startReplica(t, admin, fast(t, "B"), j.lead("B"))

	waitFor(t, "A's backend is there", func() bool {
		return pgtest.TerminateBackends(context.Background(), t, srv.DSN(), "amtriage-A") > 0
	})
	killed, err := ReadLease(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A renews on a new connection", func() bool {
		s, err := ReadLease(context.Background(), admin)
		return err == nil && s.Holder == "A" && s.ExpiresAt.After(killed.ExpiresAt)
	})
	if !a.e.IsLeader() || a.e.Epoch() != j.epoch("A") {
		t.Errorf("A leads %v at epoch %d, want still at %d", a.e.IsLeader(), a.e.Epoch(), j.epoch("A"))
	}
	if ev := j.snapshot(); fmt.Sprint(ev) != "[A leads]" {
		t.Errorf("events %v, want A's one term, unbroken", ev)
	}
}
