package storetest

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// deadLetters gives up on one event per id for receiver r (through the
// queue, as a deliverer does) and returns their dead letters' ids, oldest
// first.
func deadLetters(t testing.TB, s store.Store, r string, ids ...string) []uint64 {
	t.Helper()
	commit, _ := opened(1, []string{r}, ids...)
	apply(t, s, commit)
	var out []uint64
	for range ids {
		env, _, _ := next(t, s, r, t0.Add(time.Hour), nil)
		if env == nil {
			t.Fatal("nothing queued to give up on")
		}
		env.Attempts, env.LastError = 3, "gave up"
		if err := s.DeadLetter(env); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		list, _, err := s.DeadLetters(1)
		if err != nil || len(list) != 1 {
			t.Fatalf("DeadLetters(1) = %v, %v", list, err)
		}
		out = append(out, list[0].ID)
	}
	return out
}

func testDeadLettersList(t *testing.T, b Backend) {
	s, reopen := b(t)
	var told []*store.DeadLetter
	s.OnDeadLetter(func(d *store.DeadLetter) { told = append(told, d) })
	ids := deadLetters(t, s, "slack", "api-1", "api-2")
	// A notification the pipeline gave up on, in a commit.
	body := []byte(`{"status":"firing","alerts":[]}`)
	note := &store.DeadLetter{Kind: store.DeadNotification, Queue: store.InboxQueue, Error: "does not decode",
		Attempts: 1, At: time.Now().UTC(), Seq: 4, ReceivedAt: t0, Alerts: 2, Payload: body}
	apply(t, s, &store.Commit{DeadLetters: []*store.DeadLetter{note}})
	if note.ID == 0 || slices.Contains(ids, note.ID) {
		t.Errorf("the commit's dead letter got id %d (others %v)", note.ID, ids)
	}
	if len(told) != 3 || told[2].Kind != store.DeadNotification {
		t.Errorf("OnDeadLetter told %d, the last %+v; want 3, the notification last", len(told), told[len(told)-1])
	}
	ids = append(ids, note.ID)
	if !slices.IsSorted(ids) {
		t.Errorf("dead letter ids %v do not grow", ids)
	}
	check := func(when string) {
		t.Helper()
		list, total, err := s.DeadLetters(2)
		if err != nil {
			t.Fatalf("%s: DeadLetters: %v", when, err)
		}
		if total != 3 || len(list) != 2 || list[0].ID != ids[2] || list[1].ID != ids[1] {
			t.Errorf("%s: DeadLetters(2) = %v of %d; want ids %d, %d of 3 (newest first)", when, idsOf(list), total, ids[2], ids[1])
		}
		if len(list) > 0 && list[0].Payload != nil {
			t.Errorf("%s: a listed dead letter carries its payload", when)
		}
		d, err := s.ReadDeadLetter(note.ID)
		if err != nil {
			t.Fatalf("%s: ReadDeadLetter: %v", when, err)
		}
		if string(d.Payload) != string(body) || d.Kind != store.DeadNotification || d.Queue != store.InboxQueue || d.Seq != 4 ||
			!d.ReceivedAt.Equal(t0) || d.Alerts != 2 || d.Attempts != 1 || d.Error != "does not decode" || !d.At.Equal(note.At) || d.Bytes != len(body) {
			t.Errorf("%s: ReadDeadLetter = %+v payload %q", when, d, d.Payload)
		}
		if got, want := s.DeadLetterCounts(), map[string]int{"slack": 2, store.InboxQueue: 1}; !maps.Equal(got, want) {
			t.Errorf("%s: DeadLetterCounts = %v, want %v", when, got, want)
		}
	}
	check("before reopen")
	s = reopen()
	check("after reopen")
	first, err := s.ReadDeadLetter(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if oldest := s.OldestDeadLetter(); oldest.IsZero() || !oldest.Equal(first.At) {
		t.Errorf("OldestDeadLetter = %v, want the first one's %v", oldest, first.At)
	}
	if err := s.RemoveDeadLetter(note.ID); err != nil {
		t.Fatalf("RemoveDeadLetter: %v", err)
	}
	if err := s.RemoveDeadLetter(note.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second RemoveDeadLetter: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadDeadLetter(note.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadDeadLetter of a removed one: %v, want ErrNotFound", err)
	}
	if got, want := s.DeadLetterCounts(), map[string]int{"slack": 2}; !maps.Equal(got, want) {
		t.Errorf("DeadLetterCounts after the removal = %v, want %v", got, want)
	}
	if _, total, _ := s.DeadLetters(10); total != 2 {
		t.Errorf("total after the removal %d, want 2", total)
	}
}

func idsOf(list []*store.DeadLetter) []uint64 {
	var out []uint64
	for _, d := range list {
		out = append(out, d.ID)
	}
	return out
}

func testDeadLetterReplay(t *testing.T, b Backend) {
	s, reopen := b(t)
	ids := deadLetters(t, s, "slack", "api-1")
	d, err := s.ReadDeadLetter(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	ev := event(incident.Opened, t0.Add(2*time.Hour), newIncident("api-1", newAlert("fp-api-1", t0, "r")))
	if err := s.ReplayEvent(d.ID, &ev); err != nil {
		t.Fatalf("ReplayEvent: %v", err)
	}
	if err := s.ReplayEvent(d.ID, &ev); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second ReplayEvent: %v, want ErrNotFound", err)
	}
	s = reopen()
	if _, total, _ := s.DeadLetters(10); total != 0 {
		t.Errorf("%d dead letters after the replay, want 0", total)
	}
	if got := s.DeadLetterCounts(); len(got) != 0 {
		t.Errorf("DeadLetterCounts after the replay = %v", got)
	}
	if got, want := depth(t, s), map[string]int{"slack": 1}; !maps.Equal(got, want) {
		t.Errorf("OutboxDepth after the replay = %v, want %v", got, want)
	}
	env, _, _ := next(t, s, "slack", t0.Add(3*time.Hour), nil)
	if env == nil || env.Event.Incident.ID != "api-1" || !env.Event.At.Equal(ev.At) || env.Attempts != 0 {
		t.Fatalf("replayed envelope = %+v", env)
	}
	if got := drain(t, s, "slack", t0.Add(3*time.Hour)); len(got) != 1 {
		t.Errorf("the replay queued %v, want one event", got)
	}
}

func testDeadLetterReplayConcurrent(t *testing.T, b Backend) {
	s, _ := b(t)
	ids := deadLetters(t, s, "slack", "api-1")
	ev := event(incident.Opened, t0.Add(2*time.Hour), newIncident("api-1", newAlert("fp-api-1", t0, "r")))
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.ReplayEvent(ids[0], &ev)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("a concurrent replay: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent replays replayed, want 1", ok, n)
	}
	if got, want := depth(t, s), map[string]int{"slack": 1}; !maps.Equal(got, want) {
		t.Errorf("OutboxDepth = %v, want %v", got, want)
	}
}

func testDeadLettersPruned(t *testing.T, b Backend) {
	s, reopen := b(t)
	old := &store.DeadLetter{Kind: store.DeadNotification, Queue: store.InboxQueue, At: t0, Payload: []byte("old")}
	mid := &store.DeadLetter{Kind: store.DeadNotification, Queue: store.InboxQueue, At: t0.Add(time.Hour), Payload: []byte("mid")}
	young := &store.DeadLetter{Kind: store.DeadEvent, Queue: "slack", At: t0.Add(2 * time.Hour), Payload: []byte("young")}
	apply(t, s, &store.Commit{DeadLetters: []*store.DeadLetter{old, mid, young}})
	if got := s.OldestDeadLetter(); !got.Equal(t0) {
		t.Errorf("OldestDeadLetter = %v, want %v", got, t0)
	}
	apply(t, s, &store.Commit{PruneDeadBefore: t0.Add(time.Hour + 1)})
	s = reopen()
	list, total, err := s.DeadLetters(10)
	if err != nil || total != 1 || len(list) != 1 || list[0].ID != young.ID {
		t.Fatalf("after pruning: %v of %d, %v; want only %d", idsOf(list), total, err, young.ID)
	}
	if got := s.OldestDeadLetter(); !got.Equal(young.At) {
		t.Errorf("OldestDeadLetter after pruning = %v, want %v", got, young.At)
	}
	if got, want := s.DeadLetterCounts(), map[string]int{"slack": 1}; !maps.Equal(got, want) {
		t.Errorf("DeadLetterCounts after pruning = %v, want %v", got, want)
	}
	apply(t, s, &store.Commit{PruneDeadBefore: t0.Add(24 * time.Hour)})
	if got := s.OldestDeadLetter(); !got.IsZero() {
		t.Errorf("OldestDeadLetter with none = %v, want zero", got)
	}
}
