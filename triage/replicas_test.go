package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/amtriage/amtriage/view"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store/pgstore"
)

// replicaConfig is the default configuration on the PostgreSQL at dsn.
func replicaConfig(t *testing.T, dsn string) *rules.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Store.Postgres = &rules.PostgresConfig{DSN: rules.Secret(dsn)}
	return cfg
}

// leaderOf waits until exactly one of a and b (nil: a alone) leads and
// returns it, and the other.
func leaderOf(t *testing.T, a, b *harness) (lead, standby *harness) {
	t.Helper()
	waitFor(t, "one leader", func() bool {
		aLeads := a.d.pipeline.Leading()
		bLeads := b != nil && b.d.pipeline.Leading()
		if aLeads == bLeads {
			return false
		}
		lead, standby = a, b
		if bLeads {
			lead, standby = b, a
		}
		return true
	})
	return lead, standby
}

// Two replicas on one database: both take webhooks, one processes and
// delivers each event once; when it stops the other takes over with the
// state and pages what arrives then, once.
func TestReplicasShareOneDatabase(t *testing.T) {
	srv := pgtest.Start(t, pgtest.WithoutFsync())
	dsn := srv.NewDatabase(t)
	a := servingHarness(t, replicaConfig(t, dsn))
	b := servingHarness(t, replicaConfig(t, dsn))
	lead, standby := leaderOf(t, a, b)
	at := time.Now().Add(-time.Minute)
	for i := range 5 {
		// Alternate: a webhook the standby took is processed by the leader.
		h := []*harness{a, b}[i%2]
		h.mustPost(alertPayload(fmt.Sprintf("svc-%d", i), "firing", at), "")
	}
	waitFor(t, "five incidents opened by the leader", func() bool { return len(lead.rec.Events()) == 5 })
	if n := len(standby.rec.Events()); n != 0 {
		t.Fatalf("the standby delivered %d events, want 0", n)
	}
	standby.d.pipeline.decodedMu.Lock()
	cached := len(standby.d.pipeline.decoded)
	standby.d.pipeline.decodedMu.Unlock()
	if cached != 0 {
		t.Errorf("the standby keeps %d decoded messages it will never process", cached)
	}
	for _, ev := range lead.rec.Events() {
		if ev.Kind != incident.Opened {
			t.Errorf("event %s of %s, want opened", ev.Kind, ev.Incident.Service)
		}
	}

	lead.stop() // a graceful stop releases the lease: the standby leads at once
	waitFor(t, "the standby leads", standby.d.pipeline.Leading)
	res := standby.do(http.MethodGet, "/api/incidents", nil, "")
	var list struct {
		Incidents []view.Incident `json:"incidents"`
	}
	if err := json.Unmarshal(res.body, &list); err != nil || len(list.Incidents) != 5 {
		t.Fatalf("the new leader's incidents: %d (%v), want the 5 its predecessor opened: %s", len(list.Incidents), err, res.body)
	}
	standby.mustPost(alertPayload("svc-0", "resolved", at), "")
	standby.mustPost(alertPayload("svc-new", "firing", at), "")
	waitFor(t, "the new leader delivers", func() bool { return len(standby.rec.Events()) >= 2 })
	kinds := map[string]incident.EventKind{}
	for _, ev := range standby.rec.Events() {
		kinds[ev.Incident.Service] = ev.Kind
	}
	if kinds["svc-new"] != incident.Opened || kinds["svc-0"] == incident.Opened || len(kinds) != 2 {
		t.Errorf("the new leader delivered %v; want svc-new opened and svc-0 resolved (not opened again), nothing else", kinds)
	}
}

// A standby is ready while the database answers; with the database down
// webhooks get 503 (nothing acknowledged that is not stored) and /readyz
// is not ready; both recover without a restart.
func TestReplicaWithoutItsDatabase(t *testing.T) {
	srv := pgtest.Start(t, pgtest.WithoutFsync())
	dsn := srv.NewDatabase(t)
	h := servingHarness(t, replicaConfig(t, dsn))
	waitFor(t, "it leads", h.d.pipeline.Leading)
	srv.Stop(t)
	if res := h.post(alertPayload("api", "firing", time.Now()), ""); res.code != http.StatusServiceUnavailable {
		t.Fatalf("webhook with the database down: %d %s, want 503", res.code, res.body)
	}
	if res := h.do(http.MethodGet, "/readyz", nil, ""); res.code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database down: %d %s, want 503", res.code, res.body)
	} else if want := "host=127.0.0.1"; !json.Valid(res.body) || !strings.Contains(string(res.body), want) {
		t.Errorf("/readyz says %s; want the database named (%s)", res.body, want)
	}
	srv.Start(t)
	waitFor(t, "ready again", func() bool { return h.do(http.MethodGet, "/readyz", nil, "").code == http.StatusOK })
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	waitFor(t, "the page", func() bool { return len(h.rec.Events()) == 1 })
}

// PostgreSQL down when a replica starts: it serves, says it is not ready
// and why (the database by host, never its password), answers webhooks
// 503, and once the database is up it migrates, leads and pages.
func TestReplicaStartsWithoutItsDatabase(t *testing.T) {
	srv := pgtest.Start(t, pgtest.WithoutFsync())
	dsn := pgtest.PasswordDSN(srv.NewDatabase(t))
	srv.Stop(t)
	h := newHarnessDaemon(t, replicaConfig(t, dsn))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.d.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	res := h.do(http.MethodGet, "/readyz", nil, "")
	if res.code != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "host=127.0.0.1") {
		t.Fatalf("/readyz with the database down at start: %d %s; want 503 naming the database", res.code, res.body)
	}
	if res := h.post(alertPayload("api", "firing", time.Now()), ""); res.code != http.StatusServiceUnavailable {
		t.Fatalf("webhook with the database down at start: %d %s, want 503", res.code, res.body)
	}
	srv.Start(t)
	waitFor(t, "ready once the database is up", func() bool { return h.do(http.MethodGet, "/readyz", nil, "").code == http.StatusOK })
	h.mustPost(alertPayload("api", "firing", time.Now()), "")
	waitFor(t, "the page", func() bool { return len(h.rec.Events()) == 1 })
	if logs := h.logs.String(); strings.Contains(logs, pgtest.Password) || strings.Contains(string(res.body), pgtest.Password) {
		t.Errorf("the DSN's password was printed:\n%s", logs)
	} else if !strings.Contains(logs, "PostgreSQL not reachable") {
		t.Errorf("the outage was not logged:\n%s", logs)
	}
}

// A database whose schema a newer amtriage wrote is refused at start,
// naming both versions.
func TestReplicaRefusesANewerSchema(t *testing.T) {
	dsn := pgtest.Start(t, pgtest.WithoutFsync()).NewDatabase(t)
	ctx := context.Background()
	pool, err := pgstore.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pgstore.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES (99, 'from the future')`); err != nil {
		t.Fatal(err)
	}
	_, err = NewDaemon(replicaConfig(t, dsn), Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&eventRecorder{}}})
	want := fmt.Sprintf("database schema 99 was written by a newer amtriage; this one reads up to %d", pgstore.SchemaVersion)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("NewDaemon on a newer schema: %v; want an error saying %q", err, want)
	}
}

// A standby whose database a newer amtriage migrated since it started
// (a rolling update) refuses to lead: Serve ends with both versions named.
func TestAStandbyDoesNotLeadANewerSchema(t *testing.T) {
	dsn := pgtest.Start(t, pgtest.WithoutFsync()).NewDatabase(t)
	a := servingHarness(t, replicaConfig(t, dsn))
	waitFor(t, "a leads", a.d.pipeline.Leading)
	b := newHarnessDaemon(t, replicaConfig(t, dsn))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- b.d.Serve(ctx, ln) }()
	if _, err := a.d.replicas.pool.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES (99, 'from the future')`); err != nil {
		t.Fatal(err)
	}
	a.stop() // b is next in line
	select {
	case err := <-done:
		want := fmt.Sprintf("database schema 99 was written by a newer amtriage; this one reads up to %d", pgstore.SchemaVersion)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Serve: %v; want an error saying %q", err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the standby kept serving on a newer schema")
	}
	if b.d.pipeline.Leading() || len(b.rec.Events()) != 0 {
		t.Errorf("the standby led (%v) or delivered (%d) on a newer schema", b.d.pipeline.Leading(), len(b.rec.Events()))
	}
}

// A replica waiting out its backoff for the database joins the election as
// soon as the database is back (its /readyz found it), not when the wait
// ends: ready must mean it can lead.
func TestAReplicaLeadsOnceItsDatabaseIsBack(t *testing.T) {
	srv := pgtest.Start(t, pgtest.WithoutFsync())
	dsn := srv.NewDatabase(t)
	srv.Stop(t)
	h := newHarnessDaemon(t, replicaConfig(t, dsn))
	h.d.replicas.retryFrom = time.Hour // were it to wait it out, it would not lead in this test
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.d.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the first attempt failed", func() bool { return strings.Contains(h.logs.String(), "PostgreSQL not reachable; retrying") })
	srv.Start(t)
	waitFor(t, "ready", func() bool { return h.do(http.MethodGet, "/readyz", nil, "").code == http.StatusOK })
	waitFor(t, "it leads", h.d.pipeline.Leading)
}
