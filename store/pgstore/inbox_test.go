package pgstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/store"
)

// openStandby opens a store that does not lead, with its own pool.
func openStandby(t *testing.T, dsn string, opts ...ConnectOption) *Store {
	t.Helper()
	p := pool(t, dsn, opts...)
	if _, err := Migrate(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), p, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two replicas take webhooks at once: every entry gets its own number, the
// numbers have no gaps, and a reader that follows the inbox (reading after
// the last number it saw, as the leader does) never sees a number before
// every smaller one has committed, or it would pass that one for good.
func TestConcurrentAppendsFromTwoReplicasAreNumberedInCommitOrder(t *testing.T) {
	dsn := freshDB(t)
	replicas := []*Store{openStandby(t, dsn), openStandby(t, dsn)}
	reader := openStandby(t, dsn)
	const writers, appends, batch = 3, 20, 3 // per replica
	const total = 2 * writers * appends * batch

	var wg sync.WaitGroup
	seqs := make(chan uint64, total)
	errs := make(chan error, 2*writers)
	for _, r := range replicas {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range appends {
					es := make([]*store.InboxEntry, batch)
					for j := range es {
						es[j] = &store.InboxEntry{ReceivedAt: time.Now(), Body: []byte(fmt.Sprintf("w%d-%d-%d", w, i, j))}
					}
					if err := r.AppendInbox(es); err != nil {
						errs <- err
						return
					}
					for _, e := range es {
						seqs <- e.Seq
					}
				}
			}()
		}
	}
	// The reader follows the inbox while they append.
	var seen []uint64
	readerDone := make(chan error, 1)
	go func() {
		last := uint64(0)
		for last < total {
			got, err := reader.ReadInbox(last, 50, 1<<20)
			if err != nil {
				readerDone <- err
				return
			}
			for _, e := range got {
				seen = append(seen, e.Seq)
				last = e.Seq
			}
			if len(got) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		readerDone <- nil
	}()
	wg.Wait()
	close(seqs)
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	var got []uint64
	for s := range seqs {
		got = append(got, s)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if len(got) != total {
		t.Fatalf("%d sequences for %d entries", len(got), total)
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("sequences are not 1..%d without gaps or repeats: position %d holds %d", total, i, s)
		}
	}
	select {
	case err := <-readerDone:
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the reader stopped at %d of %d entries: it passed one that committed later", len(seen), total)
	}
	for i, s := range seen {
		if s != uint64(i+1) {
			t.Fatalf("the reader saw %d at position %d: it passed %d before it committed", s, i, i+1)
		}
	}
	for _, r := range append(replicas, reader) {
		if r.InboxSeq() > total {
			t.Errorf("InboxSeq %d beyond the %d appended", r.InboxSeq(), total)
		}
	}
}

// waitListening returns once a backend of application app is listening
// (idle after the LISTEN, or the poll that follows it), so a notification
// reaches it.
func waitListening(t *testing.T, db DB, app string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		var n int
		err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND query IN ($2, $3) AND state = 'idle'`, app, "LISTEN "+inboxChannel, watchPoll).Scan(&n)
		if err != nil {
			t.Fatalf("no backend of %s listened: %v", app, err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchWakesOnAnotherReplicasAppendAndByPolling(t *testing.T) {
	for _, tc := range []struct {
		name   string
		poll   time.Duration
		append func(t *testing.T, other *Store) uint64
	}{
		// An hour's poll: only the notification can wake it.
		{"notified", time.Hour, func(t *testing.T, other *Store) uint64 {
			es := []*store.InboxEntry{{ReceivedAt: time.Now(), Body: []byte("{}")}}
			if err := other.AppendInbox(es); err != nil {
				t.Fatal(err)
			}
			return es[0].Seq
		}},
		// An append that notifies nothing (as if the notification were
		// lost with its connection): only the poll can see it.
		{"polled", 20 * time.Millisecond, func(t *testing.T, other *Store) uint64 {
			var seq int64
			ctx := context.Background()
			if err := other.Pool().QueryRow(ctx, `UPDATE inbox_seq SET seq = seq + 1 RETURNING seq`).Scan(&seq); err != nil {
				t.Fatal(err)
			}
			if _, err := other.Pool().Exec(ctx, `INSERT INTO inbox (seq, received_ns, replayed, body) VALUES ($1, 0, false, '')`, seq); err != nil {
				t.Fatal(err)
			}
			return uint64(seq)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := freshDB(t)
			watcher := openStandby(t, dsn, WithApplicationSuffix("watcher"))
			other := openStandby(t, dsn)
			ctx, cancel := context.WithCancel(context.Background())
			woke := make(chan struct{}, 100)
			done := make(chan struct{})
			go func() {
				defer close(done)
				watcher.Watch(ctx, tc.poll, func() { woke <- struct{}{} })
			}()
			defer func() { cancel(); <-done }()
			waitListening(t, other.Pool(), "amtriage-watcher")
			seq := tc.append(t, other)
			select {
			case <-woke:
			case <-time.After(30 * time.Second):
				t.Fatal("Watch did not wake after another replica's append")
			}
			if got := watcher.InboxSeq(); got != seq {
				t.Errorf("the watcher's InboxSeq = %d, want %d", got, seq)
			}
		})
	}
}

// A store whose database went away fails every operation with an error
// that names the database and never holds the password.
func TestErrorsOfAStoreWhoseDatabaseWentAwayHoldNoPassword(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := pgtest.PasswordDSN(srv.NewDatabase(t))
	s := openLeading(t, dsn, "a")
	srv.Stop(t)
	env := struct{ r string }{"r"}
	checks := []struct {
		name string
		err  func() error
	}{
		{"AppendInbox", func() error { return s.AppendInbox([]*store.InboxEntry{{ReceivedAt: time.Now(), Body: []byte("{}")}}) }},
		{"ReadInbox", func() error { _, err := s.ReadInbox(0, 10, 1<<20); return err }},
		{"LoadState", func() error { _, err := s.LoadState(); return err }},
		{"Apply", func() error { return s.Apply(&store.Commit{LastSeq: 1}) }},
		{"Next", func() error { _, _, _, err := s.Next(env.r, time.Now(), nil); return err }},
		{"Ack", func() error { return s.Ack(env.r, 1) }},
		{"OutboxDepth", func() error { _, err := s.OutboxDepth(); return err }},
		{"LoadReceiverState", func() error { var v any; _, err := s.LoadReceiverState("slack", "x", &v); return err }},
		{"SaveReceiverState", func() error { return s.SaveReceiverState("slack", "x", 1) }},
		{"DeadLetters", func() error { _, _, err := s.DeadLetters(10); return err }},
		{"ReadDeadLetter", func() error { _, err := s.ReadDeadLetter(1); return err }},
		{"RemoveDeadLetter", func() error { return s.RemoveDeadLetter(1) }},
		{"Evidence", func() error { _, _, err := s.Evidence("x"); return err }},
		{"Ping", func() error { return s.Ping(context.Background()) }},
		{"Lead", func() error { return s.Lead(context.Background(), 9) }},
	}
	for _, c := range checks {
		err := c.err()
		if err == nil {
			t.Errorf("%s succeeded with the database gone", c.name)
			continue
		}
		if strings.Contains(err.Error(), pgtest.Password) {
			t.Errorf("%s: error holds the password: %v", c.name, err)
		}
		if !strings.Contains(err.Error(), "host=127.0.0.1") {
			t.Errorf("%s: error does not name the database: %v", c.name, err)
		}
	}
	// The Lead that failed did not make it lead.
	if got := s.Epoch(); got != 0 {
		t.Errorf("after a failed Lead the store leads at epoch %d, want 0 (a standby)", got)
	}
}

// The listening connection is lost: Watch listens again, and an append
// committed while it was not listening (its notification went nowhere)
// still wakes it, without waiting for a poll.
func TestWatchWakesForAnAppendMissedWhileItsConnectionWasLost(t *testing.T) {
	dsn := freshDB(t)
	const app = "amtriage-watcher-lost"
	watcher := openStandby(t, dsn, WithApplicationSuffix("watcher-lost"))
	other := openStandby(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	woke := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.Watch(ctx, time.Hour, func() { woke <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()
	waitListening(t, other.Pool(), app)
	if n := pgtest.TerminateBackends(context.Background(), t, pgtest.Shared(t).DSN(), app); n == 0 {
		t.Fatal("no watcher backend to end")
	}
	appendWakes(t, other, watcher, woke, "Watch did not wake for the append it missed while reconnecting")
}

// A replica that cannot LISTEN (a pooler without it) still hears of the
// other replicas' appends, by polling, and the failure is reported once.
func TestWatchPollsWhenItCannotListen(t *testing.T) {
	listenStatement = `LISTEN "` // a syntax error: every LISTEN fails
	defer func() { listenStatement = "LISTEN " + inboxChannel }()
	dsn := freshDB(t)
	watcher := openStandby(t, dsn)
	other := openStandby(t, dsn)
	var reported []error
	var mu sync.Mutex
	watcher.OnWatchError(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() })
	ctx, cancel := context.WithCancel(context.Background())
	woke := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.Watch(ctx, 100*time.Millisecond, func() { woke <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()
	appendWakes(t, other, watcher, woke, "Watch, unable to listen, never woke for another replica's append")
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), "listening for appends") {
		t.Errorf("reported %v; want the failure once", reported)
	}
}

// appendWakes appends one entry through other and checks that watcher's
// Watch woke for it (else fails with missed) and sees its sequence.
func appendWakes(t *testing.T, other, watcher *Store, woke <-chan struct{}, missed string) {
	t.Helper()
	es := []*store.InboxEntry{{ReceivedAt: time.Now(), Body: []byte("{}")}}
	if err := other.AppendInbox(es); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(30 * time.Second):
		t.Fatal(missed)
	}
	if got := watcher.InboxSeq(); got != es[0].Seq {
		t.Errorf("the watcher's InboxSeq = %d, want %d", got, es[0].Seq)
	}
}
