package pgstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/store/pgstore"
)

var _ pgstore.ImportSource = (*boltstore.Export)(nil)

var t0 = time.Date(2026, 11, 23, 3, 0, 0, 123456789, time.UTC)

var receivers = []string{"pagerduty", "slack"}

func observe(svc, fp string, startsAt time.Time, sev severity.Level, status string) incident.Observation {
	a := incident.Alert{
		Key: fp + "@" + startsAt.UTC().Format(time.RFC3339Nano), Fingerprint: fp, Name: "Errors", Status: status,
		StartsAt: startsAt, Labels: map[string]string{"alertname": "Errors", "service": svc, "pod": fp},
		Annotations: map[string]string{"summary": svc + " failing"},
	}
	if status == incident.Resolved {
		a.EndsAt = startsAt.Add(time.Hour)
	}
	return incident.Observation{Alert: a, Service: svc, Decision: severity.Decision{
		Severity: sev, Rule: 10 + int(sev), Reasons: []string{fmt.Sprintf("Q%d: %s is sev %d", 10+int(sev), fp, sev)},
	}}
}

// bboltFixture is a bbolt store holding every kind of state, built by
// applying the incident book's changes as the pipeline commits them: open
// incidents with their alerts, a tombstone, heartbeats, receiver state,
// queued events for two receivers (one retried, one acknowledged), dead
// letters, evidence, and inbox entries acknowledged but not processed.
type bboltFixture struct {
	dir       string
	incidents []string // ids
	lastSeq   uint64   // processed
	inboxSeq  uint64   // appended
}

func buildBbolt(t *testing.T) *bboltFixture {
	t.Helper()
	dir := t.TempDir()
	s, err := boltstore.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := &bboltFixture{dir: dir}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var entries []*store.InboxEntry
	for i := range 5 {
		entries = append(entries, &store.InboxEntry{ReceivedAt: t0.Add(time.Duration(i) * time.Second), Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), Replayed: i == 4})
	}
	must(s.AppendInbox(entries))

	b := incident.NewBook()
	batch := func(at time.Time, group string, obs ...incident.Observation) incident.Batch {
		return incident.Batch{At: at, GroupKey: group, ExternalURL: "http://am:9093", Receiver: "amtriage", Observations: obs}
	}
	ch1 := b.Apply(batch(t0, "g-api", observe("api", "a1", t0, 1, incident.Firing), observe("api", "a2", t0, 2, incident.Firing)))
	ch2 := b.Apply(batch(t0.Add(time.Second), "g-db", observe("db", "d1", t0, 3, incident.Firing)))
	ch2b := b.Apply(batch(t0.Add(time.Second), "g-web", observe("web", "w1", t0, 2, incident.Firing)))
	must(s.Apply(&store.Commit{LastSeq: 1, Changes: []*incident.Changes{ch1}, Receivers: receivers,
		Heartbeats: map[string]time.Time{"http://am:9093": t0.Add(30 * time.Second)}}))
	must(s.Apply(&store.Commit{LastSeq: 2, Changes: []*incident.Changes{ch2, ch2b}, Receivers: receivers}))
	// a2 resolves while a1 fires: it leaves the incident, a tombstone
	// remembers it (a resend of it does not reopen anything).
	ch3 := b.Apply(batch(t0.Add(2*time.Second), "g-api", observe("api", "a1", t0, 1, incident.Firing), observe("api", "a2", t0, 2, incident.Resolved)))
	if len(ch3.Tombstones) == 0 {
		t.Fatal("fixture: the resolved alert left no tombstone")
	}
	must(s.Apply(&store.Commit{LastSeq: 3, Changes: []*incident.Changes{ch3}, Receivers: receivers,
		DeadLetters: []*store.DeadLetter{{Kind: store.DeadNotification, Queue: store.InboxQueue, Error: "cannot parse", Attempts: 1,
			At: t0.Add(3 * time.Second), Seq: 3, ReceivedAt: t0, Payload: []byte(`{"not": "a webhook"}`)}}}))
	f.lastSeq, f.inboxSeq = 3, 5
	apiID := ch1.Incidents[0].ID
	f.incidents = []string{apiID, ch2.Incidents[0].ID, ch2b.Incidents[0].ID}
	if n := len(b.Open()); n != 3 {
		t.Fatalf("fixture: %d open incidents, want 3", n)
	}

	must(s.SaveReceiverState("slack", apiID, map[string]string{"channel": "C042", "ts": "1732330800.000100"}))
	must(s.SaveReceiverState("grafana", apiID, map[string]int64{"annotation": 4242}))
	stored, err := s.PutEvidence([]store.EvidenceRecord{{ID: apiID, JSON: []byte(`{"panels":[2]}`), PNGs: map[int64][]byte{2: {0x89, 'P', 'N', 'G', 0, 1}}}})
	must(err)
	if !stored[0] {
		t.Fatal("fixture: evidence not stored")
	}
	// pagerduty: its first event acknowledged, its second retried later.
	first, _, _, err := s.Next("pagerduty", t0.Add(time.Hour), nil)
	must(err)
	must(s.Ack("pagerduty", first.Seq))
	env, _, _, err := s.Next("pagerduty", t0.Add(time.Hour), func(id string) bool { return id == first.Event.Incident.ID })
	must(err)
	env.Attempts, env.LastError, env.FirstFailure, env.NextAttempt = 2, "503 Service Unavailable", t0, t0.Add(10*time.Minute)
	must(s.Retry(env))
	// slack: its first event given up on.
	env, _, _, err = s.Next("slack", t0.Add(time.Hour), nil)
	must(err)
	env.Attempts, env.LastError = 9, "channel_not_found"
	must(s.DeadLetter(env))
	return f
}

func dbPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pgstore.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func importDir(t *testing.T, pool *pgxpool.Pool, dir string) (*pgstore.ImportCounts, error) {
	t.Helper()
	exp, err := boltstore.OpenExport(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	return pgstore.Import(context.Background(), pool, exp)
}

// leader opens a pgstore.Store on pool that leads, as a replica would.
func leader(t *testing.T, pool *pgxpool.Pool, dsn string) *pgstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, pool, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	epoch, ok, err := pgstore.TryAcquire(ctx, pool, "replica-a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire the lease after the copy: ok=%v err=%v", ok, err)
	}
	if err := s.Lead(ctx, epoch); err != nil {
		t.Fatal(err)
	}
	return s
}

// stateJSON is a LoadedState in a canonical order.
func stateJSON(t *testing.T, ls *store.LoadedState) string {
	t.Helper()
	slices.SortFunc(ls.Incidents, func(a, b *incident.Incident) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(ls.Alerts, func(a, b incident.AlertRef) int {
		return strings.Compare(a.IncidentID+"\x00"+a.Alert.Key, b.IncidentID+"\x00"+b.Alert.Key)
	})
	out, err := json.MarshalIndent(ls, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// drain takes every envelope off a receiver's queue, in delivery order.
func drain(t *testing.T, q notify.Queue, receiver string) []string {
	t.Helper()
	var out []string
	for {
		env, _, _, err := q.Next(receiver, t0.Add(24*time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		if env == nil {
			return out
		}
		j, _ := json.Marshal(env)
		out = append(out, fmt.Sprintf("seq=%d %s", env.Seq, j))
		if err := q.Ack(receiver, env.Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportCopiesABboltStoreWhole(t *testing.T) {
	f := buildBbolt(t)
	dsn := pgtest.Shared(t).NewDatabase(t)
	pool := dbPool(t, dsn)
	counts, err := importDir(t, pool, f.dir)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	// The copy released the lease: a replica takes it at once.
	if l, err := pgstore.ReadLease(context.Background(), pool); err != nil || !l.Expired || !strings.HasPrefix(l.Holder, "store-migrate-") {
		t.Errorf("lease after the copy = %+v, %v; want released by store-migrate", l, err)
	}
	pg := leader(t, pool, dsn)
	bb, err := boltstore.OpenStore(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()

	want := &pgstore.ImportCounts{Incidents: 3, Alerts: 3, Tombstones: 1, Heartbeats: 1,
		ReceiverStates: map[string]int{"grafana": 1, "slack": 1}, Outbox: map[string]int{"pagerduty": 2, "slack": 2},
		DeadLetters: 2, Evidence: 1, EvidencePNGs: 1, Inbox: 2, LastProcessed: 3, NextInboxSeq: 6}
	if g, w := fmt.Sprintf("%+v", *counts), fmt.Sprintf("%+v", *want); g != w {
		t.Errorf("counts:\n got %s\nwant %s", g, w)
	}

	t.Run("state", func(t *testing.T) {
		bls, err := bb.LoadState()
		if err != nil {
			t.Fatal(err)
		}
		pls, err := pg.LoadState()
		if err != nil {
			t.Fatal(err)
		}
		if bls.LastSeq != f.lastSeq || len(bls.Tombstones) != 1 || len(bls.Heartbeats) != 1 {
			t.Fatalf("fixture: bbolt state %+v", bls)
		}
		if g, w := stateJSON(t, pls), stateJSON(t, bls); g != w {
			t.Errorf("PostgreSQL state differs from bbolt's:\n got %s\nwant %s", g, w)
		}
	})
	t.Run("receiver state", func(t *testing.T) {
		for _, r := range []string{"slack", "grafana"} {
			var got, want json.RawMessage
			okP, errP := pg.LoadReceiverState(r, f.incidents[0], &got)
			okB, errB := bb.LoadReceiverState(r, f.incidents[0], &want)
			if errP != nil || errB != nil || !okP || !okB || !bytes.Equal(got, want) {
				t.Errorf("%s state: PostgreSQL %v %s (%v), bbolt %v %s (%v)", r, okP, got, errP, okB, want, errB)
			}
		}
	})
	t.Run("evidence", func(t *testing.T) {
		for _, id := range f.incidents {
			gj, gok, _ := pg.Evidence(id)
			wj, wok, _ := bb.Evidence(id)
			gp, _, _ := pg.EvidencePNG(id, 2)
			wp, _, _ := bb.EvidencePNG(id, 2)
			if gok != wok || !bytes.Equal(gj, wj) || !bytes.Equal(gp, wp) {
				t.Errorf("evidence of %s: PostgreSQL %v %q %x, bbolt %v %q %x", id, gok, gj, gp, wok, wj, wp)
			}
		}
	})
	t.Run("dead letters", func(t *testing.T) {
		gl, gn, err := pg.DeadLetters(10)
		if err != nil {
			t.Fatal(err)
		}
		wl, wn, _ := bb.DeadLetters(10)
		if gn != wn || len(gl) != len(wl) {
			t.Fatalf("dead letters: %d listed of %d, want %d of %d", len(gl), gn, len(wl), wn)
		}
		for i := range wl {
			g, _ := pg.ReadDeadLetter(gl[i].ID)
			w, _ := bb.ReadDeadLetter(wl[i].ID)
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			if string(gj) != string(wj) || !bytes.Equal(g.Payload, w.Payload) {
				t.Errorf("dead letter %d:\n got %s %q\nwant %s %q", wl[i].ID, gj, g.Payload, wj, w.Payload)
			}
		}
		if g, w := pg.DeadLetterCounts(), bb.DeadLetterCounts(); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("dead letter counts %v, want %v", g, w)
		}
	})
	t.Run("inbox", func(t *testing.T) {
		got, err := pg.ReadInbox(f.lastSeq, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := bb.ReadInbox(f.lastSeq, 100, 1<<20)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if len(want) != 2 || string(gj) != string(wj) {
			t.Errorf("unprocessed inbox entries:\n got %s\nwant %s", gj, wj)
		}
		if pg.InboxSeq() != f.inboxSeq {
			t.Errorf("InboxSeq = %d, want %d", pg.InboxSeq(), f.inboxSeq)
		}
		next := &store.InboxEntry{ReceivedAt: t0.Add(time.Hour), Body: []byte(`{"new":true}`)}
		if err := pg.AppendInbox([]*store.InboxEntry{next}); err != nil {
			t.Fatal(err)
		}
		if next.Seq != f.inboxSeq+1 {
			t.Errorf("a new append got seq %d, want %d (above the copied entries)", next.Seq, f.inboxSeq+1)
		}
	})
	t.Run("outbox", func(t *testing.T) {
		gd, _ := pg.OutboxDepth()
		wd, _ := bb.OutboxDepth()
		if fmt.Sprint(gd) != fmt.Sprint(wd) {
			t.Errorf("outbox depth %v, want %v", gd, wd)
		}
		for _, r := range receivers {
			got, want := drain(t, pg, r), drain(t, bb, r)
			if len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s queue:\n got %s\nwant %s", r, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
	t.Run("numbering continues", func(t *testing.T) {
		// A new event and a new dead letter are numbered above the copied
		// ones, not onto them.
		ev := incident.Event{Kind: incident.StatusUpdate, At: t0.Add(time.Hour), Incident: incident.Incident{ID: f.incidents[0], Service: "api"}}
		d := &store.DeadLetter{Kind: store.DeadNotification, Queue: store.InboxQueue, At: t0.Add(time.Hour), Payload: []byte("x")}
		if err := pg.Apply(&store.Commit{Changes: []*incident.Changes{{Events: []incident.Event{ev}}}, Receivers: []string{"slack"},
			DeadLetters: []*store.DeadLetter{d}}); err != nil {
			t.Fatalf("Apply after the copy: %v", err)
		}
		env, _, _, err := pg.Next("slack", t0.Add(24*time.Hour), nil)
		if err != nil || env == nil {
			t.Fatalf("Next: %v %v", env, err)
		}
		if env.Seq != 4 || d.ID != 3 {
			t.Errorf("new event seq %d, dead letter id %d: want 4 and 3, after the copied ones (events 1–3, dead letters 1–2)", env.Seq, d.ID)
		}
	})
}

// failingSource fails partway through, after the state has been written.
type failingSource struct{ *boltstore.Export }

func (failingSource) Inbox(uint64, func(store.InboxEntry) error) error {
	return errors.New("disk read error")
}

// leaseWatcher reads the lease while the copy runs.
type leaseWatcher struct {
	*boltstore.Export
	pool *pgxpool.Pool
	seen pgstore.LeaseState
}

func (w *leaseWatcher) Incidents(f func(string, []byte) error) error {
	l, err := pgstore.ReadLease(context.Background(), w.pool)
	if err != nil {
		return err
	}
	w.seen = l
	return w.Export.Incidents(f)
}

func countIncidents(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM incidents`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportRefusals(t *testing.T) {
	f := buildBbolt(t)
	ctx := context.Background()
	open := func(t *testing.T) *boltstore.Export {
		exp, err := boltstore.OpenExport(f.dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exp.Close() })
		return exp
	}

	t.Run("a database that holds state", func(t *testing.T) {
		pool := dbPool(t, pgtest.Shared(t).NewDatabase(t))
		if _, err := importDir(t, pool, f.dir); err != nil {
			t.Fatal(err)
		}
		_, err := importDir(t, pool, f.dir)
		var ne *pgstore.NotEmptyError
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), "3 incidents") || !strings.Contains(err.Error(), "2 inbox entries") ||
			!strings.Contains(err.Error(), "4 outbox entries") {
			t.Fatalf("second import: %v, want a NotEmptyError naming 3 incidents, 2 inbox entries, 4 outbox entries", err)
		}
		if n := countIncidents(t, pool); n != 3 {
			t.Errorf("%d incidents after the refused import, want the 3 of the first", n)
		}
	})
	t.Run("a lease another replica holds", func(t *testing.T) {
		pool := dbPool(t, pgtest.Shared(t).NewDatabase(t))
		if _, err := pgstore.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := pgstore.TryAcquire(ctx, pool, "replica-b", time.Minute); err != nil || !ok {
			t.Fatal(ok, err)
		}
		_, err := pgstore.Import(ctx, pool, open(t))
		var held *pgstore.LeaseHeldError
		if !errors.As(err, &held) || held.Holder != "replica-b" || !strings.Contains(err.Error(), "stop every amtriage") {
			t.Fatalf("import: %v, want a LeaseHeldError naming replica-b", err)
		}
		if n := countIncidents(t, pool); n != 0 {
			t.Errorf("%d incidents copied under another's lease", n)
		}
	})
	t.Run("all or nothing", func(t *testing.T) {
		pool := dbPool(t, pgtest.Shared(t).NewDatabase(t))
		_, err := pgstore.Import(ctx, pool, failingSource{open(t)})
		if err == nil || !strings.Contains(err.Error(), "disk read error") {
			t.Fatalf("import of a failing source: %v", err)
		}
		if n := countIncidents(t, pool); n != 0 {
			t.Errorf("a failed copy left %d incidents", n)
		}
		// Its lease was released and nothing is left: a second try copies.
		if _, err := pgstore.Import(ctx, pool, open(t)); err != nil {
			t.Fatalf("import after a failed one: %v", err)
		}
	})
	t.Run("the copy runs under the lease", func(t *testing.T) {
		pool := dbPool(t, pgtest.Shared(t).NewDatabase(t))
		w := &leaseWatcher{Export: open(t), pool: pool}
		if _, err := pgstore.Import(ctx, pool, w); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(w.seen.Holder, "store-migrate-") || w.seen.Expired {
			t.Errorf("lease during the copy = %+v, want held by store-migrate", w.seen)
		}
	})
}
