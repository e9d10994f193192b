package boltstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
)

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // a second Close after an explicit one is harmless
	return s
}

func inboxEntries(at time.Time, bodies ...string) []*store.InboxEntry {
	out := make([]*store.InboxEntry, len(bodies))
	for i, b := range bodies {
		out[i] = &store.InboxEntry{ReceivedAt: at.Add(time.Duration(i) * time.Nanosecond), Body: []byte(b)}
	}
	return out
}

func seqs(entries []store.InboxEntry) []uint64 {
	out := make([]uint64, len(entries))
	for i, e := range entries {
		out[i] = e.Seq
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStoreAppendInboxAssignsIncreasingSeq(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	if got := s.InboxSeq(); got != 0 {
		t.Fatalf("fresh store InboxSeq = %d", got)
	}
	at := time.Date(2026, 11, 23, 19, 20, 45, 565975123, time.UTC)
	first := inboxEntries(at, "a", "b", "c")
	if err := s.AppendInbox(first); err != nil {
		t.Fatal(err)
	}
	second := inboxEntries(at, "d", "e")
	if err := s.AppendInbox(second); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, e := range append(first, second...) {
		got = append(got, e.Seq)
	}
	if want := []uint64{1, 2, 3, 4, 5}; !equalSeqs(got, want) {
		t.Errorf("seqs = %v, want %v", got, want)
	}
	if s.InboxSeq() != 5 {
		t.Errorf("InboxSeq = %d, want 5", s.InboxSeq())
	}
	// An empty append commits nothing and must not move the sequence back.
	if err := s.AppendInbox(nil); err != nil {
		t.Fatal(err)
	}
	if s.InboxSeq() != 5 {
		t.Errorf("after an empty append InboxSeq = %d, want 5", s.InboxSeq())
	}
	// What was appended reads back byte for byte, with its receive time.
	entries, err := s.ReadInbox(0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Fatalf("read %d entries, want 5", len(entries))
	}
	for i, e := range entries {
		want := append(first, second...)[i]
		if e.Seq != want.Seq || !bytes.Equal(e.Body, want.Body) || !e.ReceivedAt.Equal(want.ReceivedAt) {
			t.Errorf("entry %d = {%d %v %q}, want {%d %v %q}", i, e.Seq, e.ReceivedAt, e.Body, want.Seq, want.ReceivedAt, want.Body)
		}
		if e.ReceivedAt.Location() != time.UTC {
			t.Errorf("entry %d: ReceivedAt in %v, want UTC", i, e.ReceivedAt.Location())
		}
	}
}

func TestStoreReadInboxWindow(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	at := time.Now().UTC()
	// Five 10-byte bodies, seq 1..5.
	var bodies []string
	for i := 1; i <= 5; i++ {
		bodies = append(bodies, fmt.Sprintf("body-%05d", i))
	}
	if err := s.AppendInbox(inboxEntries(at, bodies...)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		after    uint64
		max      int
		maxBytes int
		want     []uint64
	}{
		{"all", 0, 100, 1 << 20, []uint64{1, 2, 3, 4, 5}},
		{"after 2", 2, 100, 1 << 20, []uint64{3, 4, 5}},
		{"after last", 5, 100, 1 << 20, []uint64{}},
		{"after beyond last", 99, 100, 1 << 20, []uint64{}},
		{"max 2", 0, 2, 1 << 20, []uint64{1, 2}},
		{"after 1 max 3", 1, 3, 1 << 20, []uint64{2, 3, 4}},
		{"maxBytes stops once reached", 0, 100, 20, []uint64{1, 2}},
		{"maxBytes exceeded by the last entry read", 0, 100, 25, []uint64{1, 2, 3}},
		{"maxBytes smaller than one body still makes progress", 3, 100, 1, []uint64{4}},
		{"max and maxBytes: the tighter wins", 0, 1, 1 << 20, []uint64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ReadInbox(tc.after, tc.max, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if !equalSeqs(seqs(got), tc.want) {
				t.Errorf("ReadInbox(%d, %d, %d) = %v, want %v", tc.after, tc.max, tc.maxBytes, seqs(got), tc.want)
			}
			for _, e := range got {
				if want := fmt.Sprintf("body-%05d", e.Seq); string(e.Body) != want {
					t.Errorf("seq %d body %q, want %q", e.Seq, e.Body, want)
				}
			}
		})
	}
	// Returned bodies are copies: bbolt's memory is read-only and reused.
	got, err := s.ReadInbox(0, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got[0].Body[0] = 'X'
	again, err := s.ReadInbox(0, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(again[0].Body) != "body-00001" {
		t.Errorf("stored body changed through a returned slice: %q", again[0].Body)
	}
}

func TestStoreTrimInbox(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	at := time.Now().UTC()
	if err := s.AppendInbox(inboxEntries(at, "1", "2", "3", "4", "5")); err != nil {
		t.Fatal(err)
	}
	if err := s.TrimInbox(3); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadInbox(0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{4, 5}; !equalSeqs(seqs(got), want) {
		t.Errorf("after TrimInbox(3): %v, want %v", seqs(got), want)
	}
	// Trimming is idempotent and never goes beyond upTo.
	if err := s.TrimInbox(3); err != nil {
		t.Fatal(err)
	}
	if err := s.TrimInbox(0); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadInbox(0, 100, 1<<20); !equalSeqs(seqs(got), []uint64{4, 5}) {
		t.Errorf("after repeated trims: %v", seqs(got))
	}
	// Trimming does not reset the sequence.
	if s.InboxSeq() != 5 {
		t.Errorf("InboxSeq after trim = %d, want 5", s.InboxSeq())
	}
	if err := s.TrimInbox(100); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadInbox(0, 100, 1<<20); len(got) != 0 {
		t.Errorf("after trimming everything: %v", seqs(got))
	}
	next := inboxEntries(at, "6")
	if err := s.AppendInbox(next); err != nil {
		t.Fatal(err)
	}
	if next[0].Seq != 6 {
		t.Errorf("seq after trimming everything = %d, want 6 (sequences are never reused)", next[0].Seq)
	}
}

func TestStoreReopenPreservesInbox(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	at := time.Now().UTC()
	if err := s.AppendInbox(inboxEntries(at, "1", "2", "3")); err != nil {
		t.Fatal(err)
	}
	if err := s.TrimInbox(3); err != nil { // even an empty inbox keeps its sequence
		t.Fatal(err)
	}
	if err := s.AppendInbox(inboxEntries(at, "4")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTestStore(t, dir)
	if got := s2.InboxSeq(); got != 4 {
		t.Fatalf("InboxSeq after reopen = %d, want 4", got)
	}
	got, err := s2.ReadInbox(0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Seq != 4 || string(got[0].Body) != "4" {
		t.Errorf("inbox after reopen = %+v", got)
	}
	next := inboxEntries(at, "5")
	if err := s2.AppendInbox(next); err != nil {
		t.Fatal(err)
	}
	if next[0].Seq != 5 {
		t.Errorf("seq after reopen = %d, want 5", next[0].Seq)
	}
}

func TestStoreSchemaMismatch(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.state.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(BucketMeta).Put(KeySchema, []byte("999"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(dir)
	if err == nil {
		s2.Close()
		t.Fatal("OpenStore accepted a state.db with another schema")
	}
	if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), "999") {
		t.Errorf("error %q does not explain the schema mismatch", err)
	}
	// The failed open released the files: restoring the schema makes it usable.
	db, err := bolt.Open(dir+"/"+StateFile, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("state.db still locked after a failed OpenStore: %v", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(BucketMeta).Put(KeySchema, []byte(SchemaVersion))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	openTestStore(t, dir)
}

func TestStoreApplyAndLoadState(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	ls, err := s.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if ls.LastSeq != 0 || len(ls.Incidents) != 0 {
		t.Fatalf("fresh state: %+v", ls)
	}

	// One real step of the incident book: an alert opens an incident.
	start := time.Date(2026, 11, 23, 19, 20, 45, 0, time.UTC)
	a := incident.Alert{
		Key: "4dbfc38214eb5646@2026-11-23T19:20:45Z", Fingerprint: "4dbfc38214eb5646", Name: "HighErrorRate",
		Status: incident.Firing, StartsAt: start, Labels: map[string]string{"alertname": "HighErrorRate", "service": "api"},
	}
	dec := severity.Decision{Severity: 2, Rule: 13, Reasons: []string{"fallback: severity=critical"}}
	book := incident.NewBook()
	ch := book.Apply(incident.Batch{
		At: start.Add(time.Second), GroupKey: "g", Complete: false,
		Observations: []incident.Observation{{Alert: a, Service: "api", Decision: dec}},
	})
	if len(ch.Incidents) != 1 || len(ch.Events) != 1 {
		t.Fatalf("test setup: book step gave %d incidents, %d events", len(ch.Incidents), len(ch.Events))
	}
	if err := s.Apply(&store.Commit{LastSeq: 7, Changes: []*incident.Changes{ch}, Receivers: []string{"r1", "r2"}}); err != nil {
		t.Fatal(err)
	}
	// A commit without LastSeq (a sweep) leaves it alone.
	if err := s.Apply(&store.Commit{Receivers: []string{"r1", "r2"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTestStore(t, dir)
	ls, err = s2.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if ls.LastSeq != 7 {
		t.Errorf("LastSeq = %d, want 7", ls.LastSeq)
	}
	if len(ls.Incidents) != 1 || ls.Incidents[0].ID != ch.Incidents[0].ID || ls.Incidents[0].Service != "api" || ls.Incidents[0].Severity != 2 {
		t.Errorf("incidents = %+v", ls.Incidents)
	}
	if len(ls.Alerts) != 1 || ls.Alerts[0].IncidentID != ch.Incidents[0].ID || ls.Alerts[0].Alert.Key != a.Key {
		t.Errorf("alerts = %+v", ls.Alerts)
	}
	// What the records leave out (the alert's key, fingerprint and name; the
	// open incident's reasons, its decisive alert's) reads back as it was.
	if got := ls.Alerts[0].Alert; got.Fingerprint != a.Fingerprint || got.Name != a.Name || !slices.Equal(got.Decision.Reasons, dec.Reasons) {
		t.Errorf("alert read back as %+v", got)
	}
	if got := ls.Incidents[0].Reasons; !slices.Equal(got, dec.Reasons) {
		t.Errorf("incident reasons read back as %q, want %q", got, dec.Reasons)
	}
	// The event was fanned out to each receiver's queue in the same commit.
	for _, r := range []string{"r1", "r2"} {
		env, _, _, err := s2.Next(r, time.Now().Add(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		if env == nil || env.Event.Kind != incident.Opened || env.Event.Incident.ID != ch.Incidents[0].ID {
			t.Errorf("outbox %s: %+v", r, env)
		}
	}
	// A later commit moves LastSeq forward.
	if err := s2.Apply(&store.Commit{LastSeq: 9}); err != nil {
		t.Fatal(err)
	}
	if ls, err := s2.LoadState(); err != nil || ls.LastSeq != 9 {
		t.Errorf("LastSeq = %v (err %v), want 9", ls.LastSeq, err)
	}
}

func TestStoreReceiverState(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	type slackState struct{ Channel, TS string }
	var got slackState
	if found, err := s.LoadReceiverState("slack", "inc-1", &got); err != nil || found {
		t.Fatalf("empty store: found %v err %v", found, err)
	}
	if err := s.SaveReceiverState("slack", "inc-1", slackState{"C1", "1.5"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if found, err := s.LoadReceiverState("slack", "inc-1", &got); err != nil || !found || got != (slackState{"C1", "1.5"}) {
		t.Fatalf("after reopen: %+v found %v err %v", got, found, err)
	}
	if found, _ := s.LoadReceiverState("grafana", "inc-1", &got); found {
		t.Fatal("state leaked across receivers")
	}
}

func TestStoreNextHeadsPerIncident(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	ev := func(id string, k incident.EventKind) incident.Event {
		return incident.Event{Kind: k, At: t0, Incident: incident.Incident{ID: id}}
	}
	ch := &incident.Changes{Events: []incident.Event{ev("A", incident.Opened), ev("B", incident.Opened), ev("A", incident.ResolvedEvent)}}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{ch}, Receivers: []string{"r"}}); err != nil {
		t.Fatal(err)
	}
	env, _, stats, err := s.Next("r", t0, nil)
	if err != nil || env == nil || env.Event.Incident.ID != "A" || env.Event.Kind != incident.Opened || stats.Depth != 3 || !stats.Oldest.Equal(t0) {
		t.Fatalf("first: %+v %+v %v", env, stats, err)
	}
	// A's head waits a minute: B goes next, and A's resolve stays behind A's trigger.
	env.NextAttempt, env.Attempts = t0.Add(time.Minute), 1
	if err := s.Retry(env); err != nil {
		t.Fatal(err)
	}
	next, _, _, err := s.Next("r", t0, nil)
	if err != nil || next == nil || next.Event.Incident.ID != "B" {
		t.Fatalf("second: %+v err %v", next, err)
	}
	if err := s.Ack("r", next.Seq); err != nil {
		t.Fatal(err)
	}
	none, wake, stats, err := s.Next("r", t0, nil)
	if err != nil || none != nil || !wake.Equal(t0.Add(time.Minute)) || stats.Depth != 2 {
		t.Fatalf("third: %+v wake %v stats %+v err %v; want nothing due until A's retry", none, wake, stats, err)
	}
	again, _, _, _ := s.Next("r", t0.Add(time.Minute), nil)
	if again == nil || again.Event.Kind != incident.Opened || again.Attempts != 1 {
		t.Fatalf("after the wait: %+v, want A's trigger with its attempt count", again)
	}
}

func TestPruneDeletesReceiverState(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, r := range []string{"slack", "grafana"} {
		if err := s.SaveReceiverState(r, "inc-old", map[string]string{"ts": "1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveReceiverState(r, "inc-new", map[string]string{"ts": "2"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Apply(&store.Commit{PrunedIncidents: []string{"inc-old"}}); err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	for _, r := range []string{"slack", "grafana"} {
		if found, _ := s.LoadReceiverState(r, "inc-old", &v); found {
			t.Errorf("%s state of a pruned incident survived", r)
		}
		if found, _ := s.LoadReceiverState(r, "inc-new", &v); !found {
			t.Errorf("%s state of a live incident was deleted", r)
		}
	}
}

// The queue depth is kept as envelopes come and go (counting a bucket's keys
// walks all of its pages, and it is read on every delivery), and read again
// on open.
func TestOutboxDepthIsCounted(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	var evs []incident.Event
	for _, id := range []string{"A", "B", "C"} {
		evs = append(evs, incident.Event{Kind: incident.Opened, At: t0, Incident: incident.Incident{ID: id}})
	}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Events: evs}}, Receivers: []string{"r1", "r2"}}); err != nil {
		t.Fatal(err)
	}
	env, _, stats, err := s.Next("r1", t0, nil)
	if err != nil || stats.Depth != 3 {
		t.Fatalf("depth %d, %v", stats.Depth, err)
	}
	if err := s.Ack("r1", env.Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("r1", env.Seq); err != nil { // again: nothing left to remove
		t.Fatal(err)
	}
	env, _, _, _ = s.Next("r1", t0, nil)
	if err := s.DeadLetter(env); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"r1": 1, "r2": 3}
	if got, _ := s.OutboxDepth(); !maps.Equal(got, want) {
		t.Fatalf("depth %v, want %v", got, want)
	}
	s.Close()
	s = openTestStore(t, dir)
	if got, _ := s.OutboxDepth(); !maps.Equal(got, want) {
		t.Fatalf("depth after reopening %v, want %v", got, want)
	}
}

// A store of schema 1 (records written whole) reads as it is, and is marked
// 2 so that an amtriage that knows only 1 refuses it instead of misreading
// the slimmer records written from now on.
func TestStoreSchema1IsUpgraded(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	a := incident.Alert{Key: "fp1@2026-11-23T03:00:00Z", Fingerprint: "fp1", Name: "X", Status: incident.Firing,
		Labels: map[string]string{"alertname": "X"}, Decision: severity.Decision{Severity: 2, Rule: 13, Reasons: []string{"r"}}}
	inc := &incident.Incident{ID: "api-1", Service: "api", Status: incident.Firing, Severity: 2, Rule: 13, Reasons: []string{"r"}, Decisive: a.Key}
	if err := s.state.Update(func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketIncidents), []byte(inc.ID), inc); err != nil { // as schema 1 wrote them
			return err
		}
		if err := putJSON(tx.Bucket(BucketAlerts), alertKey(inc.ID, a.Key), &a); err != nil {
			return err
		}
		return tx.Bucket(BucketMeta).Put(KeySchema, []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTestStore(t, dir)
	ls, err := s.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Incidents) != 1 || !slices.Equal(ls.Incidents[0].Reasons, []string{"r"}) || len(ls.Alerts) != 1 || ls.Alerts[0].Alert.Fingerprint != "fp1" {
		t.Fatalf("schema 1 records read back as %+v / %+v", ls.Incidents, ls.Alerts)
	}
	var schema string
	_ = s.state.View(func(tx *bolt.Tx) error { schema = string(tx.Bucket(BucketMeta).Get(KeySchema)); return nil })
	if schema != SchemaVersion {
		t.Errorf("schema %q after opening, want %q", schema, SchemaVersion)
	}
	// What is stored from now on is the slim form.
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Alerts: []incident.AlertRef{{IncidentID: inc.ID, Alert: &a}}}}}); err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := s.state.View(func(tx *bolt.Tx) error {
		return json.Unmarshal(tx.Bucket(BucketAlerts).Get(alertKey(inc.ID, a.Key)), &raw)
	}); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"key", "fingerprint", "alertname"} {
		if _, ok := raw[field]; ok {
			t.Errorf("stored alert repeats %s, which its record key or labels say: %v", field, raw)
		}
	}
}

// An inbox.db emptied (or replaced by an older copy) while it held
// notifications that were acknowledged and not yet processed is refused:
// state.db records how far the inbox had been acknowledged.
func TestStoreRefusesAnInboxThatLostAcknowledgedWork(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.AppendInbox(inboxEntries(time.Now(), "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&store.Commit{LastSeq: 1}); err != nil { // 1 processed, 3 acknowledged
		t.Fatal(err)
	}
	s.Close()
	if err := os.Truncate(filepath.Join(dir, InboxFile), 0); err != nil {
		t.Fatal(err)
	}
	_, err := OpenStore(dir)
	if err == nil || !strings.Contains(err.Error(), "notifications 2 to 3, acknowledged and not processed, are lost") || !strings.Contains(err.Error(), InboxFile) {
		t.Fatalf("OpenStore = %v, want the loss named", err)
	}
	// All of it processed: an emptied inbox.db loses nothing and is fine.
	dir = t.TempDir()
	s = openTestStore(t, dir)
	if err := s.AppendInbox(inboxEntries(time.Now(), "a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&store.Commit{LastSeq: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Remove(filepath.Join(dir, InboxFile)); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatalf("an inbox.db whose every notification was processed, removed: %v", err)
	}
	s2.Close()
}

// Acknowledgements are written in batches: an acknowledged envelope is not
// handed out again, the batch is written once nothing is due (or it is
// full, or 20 ms old), and a crash before it is written delivers those
// envelopes again rather than losing any.
func TestAcknowledgementsAreBatched(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	var evs []incident.Event
	for i := 0; i < 5; i++ {
		evs = append(evs, incident.Event{Kind: incident.Opened, At: t0, Incident: incident.Incident{ID: fmt.Sprintf("inc-%d", i)}})
	}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Events: evs}}, Receivers: []string{"r"}}); err != nil {
		t.Fatal(err)
	}
	queued := func(st *Store) int {
		n := 0
		_ = st.state.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketOutbox).Bucket([]byte("r")).Stats().KeyN; return nil })
		return n
	}
	for i := 0; i < 3; i++ {
		env, _, _, err := s.Next("r", t0, nil)
		if err != nil || env == nil || env.Event.Incident.ID != fmt.Sprintf("inc-%d", i) {
			t.Fatalf("Next %d = %+v, %v: an acknowledged envelope was handed out again", i, env, err)
		}
		if err := s.Ack("r", env.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := queued(s); n != 5 {
		t.Fatalf("%d envelopes stored after 3 acknowledgements, want 5 (not written yet)", n)
	}
	if depth, _ := s.OutboxDepth(); depth["r"] != 2 {
		t.Errorf("depth %v, want 2 waiting", depth)
	}
	// A crash now: the files are closed without writing the batch.
	s.inbox.Close()
	s.state.Close()
	s = openTestStore(t, dir)
	if n := queued(s); n != 5 {
		t.Fatalf("%d envelopes after the crash, want all 5 back (at least once)", n)
	}
	for i := 0; i < 5; i++ {
		env, _, _, err := s.Next("r", t0, nil)
		if err != nil || env == nil {
			t.Fatalf("Next %d: %v %v", i, env, err)
		}
		if err := s.Ack("r", env.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if env, _, _, err := s.Next("r", t0, nil); err != nil || env != nil { // nothing due: the batch is written
		t.Fatalf("Next with everything delivered = %+v, %v", env, err)
	}
	if n := queued(s); n != 0 {
		t.Errorf("%d envelopes stored once nothing was due, want 0", n)
	}
}
