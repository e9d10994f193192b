package triage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
)

// flakyStateStore fails the next Apply and the LoadState right after it,
// as a PostgreSQL connection cut mid-commit does (pg_terminate_backend, a
// restart): the commit and the reload that follows fail together.
type flakyStateStore struct {
	*boltstore.Store
	failApply, failLoad atomic.Bool
}

var errConnLost = errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")

func (s *flakyStateStore) Apply(c *store.Commit) error {
	if s.failApply.CompareAndSwap(true, false) {
		s.failLoad.Store(true)
		return errConnLost
	}
	return s.Store.Apply(c)
}

func (s *flakyStateStore) LoadState() (*store.LoadedState, error) {
	if s.failLoad.CompareAndSwap(true, false) {
		return nil, errConnLost
	}
	return s.Store.LoadState()
}

// Found with two replicas on PostgreSQL and pg_terminate_backend of every
// amtriage backend during a storm: a webhook answered 200 never became an
// incident in the database, never paged, while the leader's /api/incidents
// listed it (1353 incidents in memory, 1352 rows). A commit that fails
// and whose reload fails too leaves the book ahead of the store; the retry
// of the same notification then finds its alert already known, commits
// nothing for it but lastSeq, and the inbox entry is deleted.
func TestAttackFailedCommitAndReloadLoseTheNotification(t *testing.T) {
	s := &flakyStateStore{Store: openTestStore(t, t.TempDir())}
	p, err := NewPipeline(PipelineOptions{Store: s, Triager: &Triager{Config: testConfig(t)}, Log: slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(prometheus.NewRegistry()), Receivers: []string{"pager"}})
	if err != nil {
		t.Fatal(err)
	}
	entry := &store.InboxEntry{ReceivedAt: time.Now(), Body: alertPayload("api", "firing", time.Now().Add(-time.Minute))}
	if err := s.AppendInbox([]*store.InboxEntry{entry}); err != nil { // the 200
		t.Fatal(err)
	}
	s.failApply.Store(true)
	if err := p.Drain(context.Background()); err == nil {
		t.Fatal("Drain with a failing commit returned nil")
	}
	if err := p.Drain(context.Background()); err != nil { // the database is back
		t.Fatalf("Drain after recovery: %v", err)
	}
	ls, err := s.Store.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Incidents) != 1 || ls.LastSeq != entry.Seq {
		t.Errorf("stored: %d incidents, last seq %d; want 1 incident for the acknowledged alert, seq %d (in memory: %d open)",
			len(ls.Incidents), ls.LastSeq, entry.Seq, len(p.OpenIncidents()))
	}
	env, _, _, err := s.Store.Next("pager", time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if env == nil {
		t.Errorf("no event queued for the receiver: the alert never pages")
	}
}

// Found on two running replicas: a standby's /readyz says inbox_pending
// 100, 291, or 1974 just after a restart, while the leader has processed
// everything (its own /readyz and amtriage_inbox_pending say 0). A standby
// counts from the last state it loaded, not from the shared progress: an
// SRE reading the standby's /readyz sees a backlog that is not there.
func TestAttackStandbyReportsNoBacklogTheLeaderProcessed(t *testing.T) {
	srv := pgtest.Start(t, pgtest.WithoutFsync())
	dsn := srv.NewDatabase(t)
	a := servingHarness(t, replicaConfig(t, dsn))
	b := servingHarness(t, replicaConfig(t, dsn))
	lead, standby := leaderOf(t, a, b)
	at := time.Now().Add(-time.Minute)
	for i := range 5 {
		lead.mustPost(alertPayload(fmt.Sprintf("svc-%d", i), "firing", at), "")
	}
	waitFor(t, "the leader processed the five", func() bool { return len(lead.rec.Events()) == 5 && lead.d.pipeline.Pending() == 0 })
	waitFor(t, "the standby heard of the appends", func() bool { return standby.d.replicas.store.InboxSeq() >= 5 })
	var ready struct {
		Pending uint64 `json:"inbox_pending"`
		Leader  bool   `json:"leader"`
	}
	res := standby.do(http.MethodGet, "/readyz", nil, "")
	if err := json.Unmarshal(res.body, &ready); err != nil {
		t.Fatal(err)
	}
	if ready.Leader || ready.Pending != 0 {
		t.Errorf("standby /readyz: %s; want leader false and inbox_pending 0 (the leader processed everything)", res.body)
	}
}

// Found reading replayDeadLetter with two replicas in mind: a dead event
// is replayed as the incident is in the answering replica's memory
// (Pipeline.CurrentEvent). On a standby that memory is the state of its
// last reload (up to 30 s old, empty just after its start), so a replay
// through the Service either is refused as "no longer kept (pruned after
// incidents.retention)" though the incident is there, or queues the old
// trigger of an incident the leader has resolved: PagerDuty is paged for a
// resolved incident and nothing resolves it again.
func TestAttackReplayOnTheStandbyTellsTheIncidentAsItIsNow(t *testing.T) {
	for _, tt := range []struct {
		name string
		// reloaded: the standby's 30 s reload ran while the incident fired.
		reloaded bool
	}{
		{"standby not reloaded since its start", false},
		{"standby reloaded while the incident fired", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := pgtest.Start(t, pgtest.WithoutFsync())
			dsn := srv.NewDatabase(t)
			pagers := map[*harness]*refusingReceiver{}
			newReplica := func() *harness {
				pager := &refusingReceiver{refuse: map[incident.EventKind]bool{incident.Opened: true}}
				h := servingHarness(t, replicaConfig(t, dsn), func(o *Options) { o.Notifiers = append(o.Notifiers, pager) })
				pagers[h] = pager
				return h
			}
			a, b := newReplica(), newReplica()
			lead, standby := leaderOf(t, a, b)
			start := time.Now().Add(-time.Minute)
			lead.mustPost(alertPayload("api", "firing", start), "")
			waitFor(t, "the trigger dead-lettered", func() bool { return lead.deadLetters().Total == 1 })
			if tt.reloaded {
				standby.d.pipeline.refreshStandby()
			}
			lead.mustPost(alertPayload("api", "resolved", start), "")
			waitFor(t, "the resolve delivered", func() bool { return len(pagers[lead].Events()) == 1 })
			for _, p := range pagers {
				p.mu.Lock()
				p.refuse = nil
				p.mu.Unlock()
			}
			d := lead.deadLetters().DeadLetters[0]
			// The standby refuses (503, nothing queued): only the leader
			// knows the incident as it is now; through it, the replay is
			// the resolve.
			path := fmt.Sprintf("/api/deadletters/%d/replay", d.ID)
			if res := standby.do(http.MethodPost, path, nil, ""); res.code != http.StatusServiceUnavailable {
				t.Fatalf("replay through the standby = %d %s; want 503 (the leader replays)", res.code, res.body)
			}
			if lead.deadLetters().Total != 1 {
				t.Fatal("the standby's refused replay removed the dead letter")
			}
			if res := lead.do(http.MethodPost, path, nil, ""); res.code != http.StatusOK {
				t.Fatalf("replay through the leader = %d %s", res.code, res.body)
			}
			waitFor(t, "the replay delivered", func() bool { return len(pagers[lead].Events()) == 2 })
			var kinds []incident.EventKind
			for _, ev := range pagers[lead].Events() {
				kinds = append(kinds, ev.Kind)
			}
			if !slices.Equal(kinds, []incident.EventKind{incident.ResolvedEvent, incident.ResolvedEvent}) {
				t.Fatalf("the receiver got %v; want the resolve, then the replay as resolved (never the old trigger)", kinds)
			}
		})
	}
}

// Found on running replicas: a standby started while 10,895 incidents were
// open answered GET /api/incidents with none ({"incidents":[],"total":0})
// and amtriage_incidents_open 0 until its first 30 s reload. Behind the
// Service, the board shows "no incidents" to every other request at 3 a.m.;
// the README promises a standby's answer is at most 30 s old, not empty.
func TestAttackNewStandbyListsTheOpenIncidents(t *testing.T) {
	srv := pgtest.Start(t, pgtest.WithoutFsync())
	dsn := srv.NewDatabase(t)
	lead := servingHarness(t, replicaConfig(t, dsn))
	leaderOf(t, lead, nil)
	at := time.Now().Add(-time.Minute)
	for i := range 3 {
		lead.mustPost(alertPayload(fmt.Sprintf("svc-%d", i), "firing", at), "")
	}
	waitFor(t, "three incidents opened", func() bool { return len(lead.rec.Events()) == 3 })
	standby := servingHarness(t, replicaConfig(t, dsn))
	if standby.d.pipeline.Leading() {
		t.Fatal("the new replica leads; want a standby")
	}
	var list struct {
		Total int `json:"total"`
	}
	res := standby.do(http.MethodGet, "/api/incidents", nil, "")
	if err := json.Unmarshal(res.body, &list); err != nil {
		t.Fatal(err)
	}
	if list.Total != 3 {
		t.Errorf("a standby just started lists %d open incidents, want the leader's 3: %s", list.Total, res.body)
	}
}
