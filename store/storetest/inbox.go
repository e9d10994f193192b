package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/amtriage/amtriage/store"
)

func entries(at time.Time, bodies ...string) []*store.InboxEntry {
	out := make([]*store.InboxEntry, len(bodies))
	for i, b := range bodies {
		out[i] = &store.InboxEntry{ReceivedAt: at.Add(time.Duration(i)), Body: []byte(b)}
	}
	return out
}

func appendInbox(t testing.TB, s store.Store, es []*store.InboxEntry) []uint64 {
	t.Helper()
	if err := s.AppendInbox(es); err != nil {
		t.Fatalf("AppendInbox: %v", err)
	}
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func readInbox(t testing.TB, s store.Store, after uint64, limit, maxBytes int) []store.InboxEntry {
	t.Helper()
	got, err := s.ReadInbox(after, limit, maxBytes)
	if err != nil {
		t.Fatalf("ReadInbox(%d, %d, %d): %v", after, limit, maxBytes, err)
	}
	return got
}

func seqsOf(es []store.InboxEntry) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func testInboxAppendNumbers(t *testing.T, b Backend) {
	s, _ := b(t)
	if got := s.InboxSeq(); got != 0 {
		t.Fatalf("fresh store: InboxSeq = %d, want 0", got)
	}
	first := appendInbox(t, s, entries(t0, "a", "b", "c"))
	second := appendInbox(t, s, entries(t0, "d", "e"))
	if got, want := append(first, second...), []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("sequences %v, want %v", got, want)
	}
	if got := s.InboxSeq(); got != 5 {
		t.Errorf("InboxSeq = %d, want 5", got)
	}
	if err := s.AppendInbox(nil); err != nil {
		t.Fatalf("empty append: %v", err)
	}
	if got := s.InboxSeq(); got != 5 {
		t.Errorf("after an empty append InboxSeq = %d, want 5", got)
	}
}

func testInboxReadWindow(t *testing.T, b Backend) {
	s, _ := b(t)
	var bodies []string
	for i := 1; i <= 5; i++ {
		bodies = append(bodies, fmt.Sprintf("body-%05d", i)) // 10 bytes each
	}
	appendInbox(t, s, entries(t0, bodies...))
	for _, tc := range []struct {
		name            string
		after           uint64
		limit, maxBytes int
		want            []uint64
	}{
		{"all", 0, 100, 1 << 20, []uint64{1, 2, 3, 4, 5}},
		{"after 2", 2, 100, 1 << 20, []uint64{3, 4, 5}},
		{"after the last", 5, 100, 1 << 20, []uint64{}},
		{"after beyond the last", 99, 100, 1 << 20, []uint64{}},
		{"limit 2", 0, 2, 1 << 20, []uint64{1, 2}},
		{"after 1 limit 3", 1, 3, 1 << 20, []uint64{2, 3, 4}},
		{"stops once maxBytes is reached", 0, 100, 20, []uint64{1, 2}},
		{"the entry that passes maxBytes is read", 0, 100, 25, []uint64{1, 2, 3}},
		{"maxBytes below one body still reads one", 3, 100, 1, []uint64{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readInbox(t, s, tc.after, tc.limit, tc.maxBytes)
			if !slices.Equal(seqsOf(got), tc.want) {
				t.Errorf("ReadInbox(%d, %d, %d) = %v, want %v", tc.after, tc.limit, tc.maxBytes, seqsOf(got), tc.want)
			}
			for _, e := range got {
				if want := fmt.Sprintf("body-%05d", e.Seq); string(e.Body) != want {
					t.Errorf("entry %d: body %q, want %q", e.Seq, e.Body, want)
				}
			}
		})
	}
	// A returned body is the caller's: changing it changes nothing stored.
	got := readInbox(t, s, 0, 1, 1<<20)
	got[0].Body[0] = 'X'
	if again := readInbox(t, s, 0, 1, 1<<20); string(again[0].Body) != "body-00001" {
		t.Errorf("stored body changed through a returned slice: %q", again[0].Body)
	}
}

func testInboxRoundTrip(t *testing.T, b Backend) {
	s, reopen := b(t)
	in := []*store.InboxEntry{
		{ReceivedAt: t0, Body: []byte(`{"status":"firing"}`)},
		{ReceivedAt: t0.Add(time.Nanosecond), Body: []byte("\x00\xffbinary"), Replayed: true},
		{ReceivedAt: t0.Add(time.Hour + 7), Body: []byte("x")},
		{ReceivedAt: t0, Body: nil}, // an empty body is stored as empty
		{ReceivedAt: t0.Add(time.Minute), Body: []byte(`{"action":"ack"}`), Kind: store.EntryAction},
		{ReceivedAt: t0.Add(time.Minute), Body: []byte(`{"action":"ack"}`), Kind: store.EntryAction, Replayed: true},
	}
	appendInbox(t, s, in)
	check := func(when string, got []store.InboxEntry) {
		t.Helper()
		if len(got) != len(in) {
			t.Fatalf("%s: read %d entries, want %d", when, len(got), len(in))
		}
		for i, e := range got {
			w := in[i]
			if e.Seq != w.Seq || !bytes.Equal(e.Body, w.Body) || e.Replayed != w.Replayed || e.Kind != w.Kind ||
				e.ReceivedAt.UnixNano() != w.ReceivedAt.UnixNano() {
				t.Errorf("%s: entry %d = {%d %s %q %v %d}, want {%d %s %q %v %d}", when, i,
					e.Seq, e.ReceivedAt.Format(time.RFC3339Nano), e.Body, e.Replayed, e.Kind,
					w.Seq, w.ReceivedAt.Format(time.RFC3339Nano), w.Body, w.Replayed, w.Kind)
			}
			if e.ReceivedAt.Location() != time.UTC {
				t.Errorf("%s: entry %d arrived in %v, want UTC", when, i, e.ReceivedAt.Location())
			}
		}
	}
	check("before reopen", readInbox(t, s, 0, 100, 1<<20))
	s = reopen()
	check("after reopen", readInbox(t, s, 0, 100, 1<<20))
	if got := s.InboxSeq(); got != uint64(len(in)) {
		t.Errorf("InboxSeq after reopen = %d, want %d", got, len(in))
	}
}

// The pipeline folds entries in with a commit's LastSeq, tells the store
// (MarkProcessed, TrimInbox) and reads on after LastSeq; after a restart
// it reads after the LastSeq it loads.
func testInboxProcessedAfterReopen(t *testing.T, b Backend) {
	s, reopen := b(t)
	appendInbox(t, s, entries(t0, "1", "2", "3", "4", "5"))
	apply(t, s, &store.Commit{LastSeq: 3})
	s.MarkProcessed(3)
	if err := s.TrimInbox(3); err != nil {
		t.Fatalf("TrimInbox: %v", err)
	}
	if got := seqsOf(readInbox(t, s, 0, 100, 1<<20)); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("inbox after folding in 3: %v, want [4 5]", got)
	}
	s = reopen()
	ls := load(t, s)
	if ls.LastSeq != 3 {
		t.Fatalf("LastSeq after reopen = %d, want 3", ls.LastSeq)
	}
	if got := seqsOf(readInbox(t, s, ls.LastSeq, 100, 1<<20)); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("read after LastSeq on reopen: %v, want [4 5]", got)
	}
	if got := seqsOf(readInbox(t, s, 0, 100, 1<<20)); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("inbox after reopen: %v, want [4 5] (1-3 were folded in)", got)
	}
	if got := s.InboxSeq(); got != 5 {
		t.Errorf("InboxSeq after reopen = %d, want 5", got)
	}
	if got := appendInbox(t, s, entries(t0, "6", "7")); !slices.Equal(got, []uint64{6, 7}) {
		t.Errorf("appends after reopen numbered %v, want [6 7]", got)
	}
	// Everything folded in and trimmed: the numbering still goes on.
	apply(t, s, &store.Commit{LastSeq: 7})
	s.MarkProcessed(7)
	if err := s.TrimInbox(7); err != nil {
		t.Fatalf("TrimInbox: %v", err)
	}
	s = reopen()
	if got := s.InboxSeq(); got != 7 {
		t.Errorf("InboxSeq after an emptied inbox and reopen = %d, want 7", got)
	}
	if got := readInbox(t, s, load(t, s).LastSeq, 100, 1<<20); len(got) != 0 {
		t.Errorf("read after LastSeq 7: %v, want nothing", seqsOf(got))
	}
	if got := appendInbox(t, s, entries(t0, "8")); !slices.Equal(got, []uint64{8}) {
		t.Errorf("append after an emptied inbox and reopen numbered %v, want [8]", got)
	}
}

// More entries than one read of a backend's may fetch at once.
func testInboxMany(t *testing.T, b Backend) {
	s, _ := b(t)
	const n = 300
	var bodies []string
	for i := 1; i <= n; i++ {
		bodies = append(bodies, fmt.Sprintf("%03d", i))
	}
	appendInbox(t, s, entries(t0, bodies...))
	for _, tc := range []struct {
		after           uint64
		limit, maxBytes int
		want            int
	}{{0, n, 1 << 20, n}, {0, 200, 1 << 20, 200}, {10, 1000, 1 << 20, n - 10}, {0, n, 3 * 150, 150}} {
		got := readInbox(t, s, tc.after, tc.limit, tc.maxBytes)
		if len(got) != tc.want {
			t.Errorf("ReadInbox(%d, %d, %d) read %d entries, want %d", tc.after, tc.limit, tc.maxBytes, len(got), tc.want)
		}
		for i, e := range got {
			if want := tc.after + uint64(i) + 1; e.Seq != want || string(e.Body) != fmt.Sprintf("%03d", want) {
				t.Fatalf("ReadInbox(%d, %d, %d): entry %d is %d %q, want %d", tc.after, tc.limit, tc.maxBytes, i, e.Seq, e.Body, want)
			}
		}
	}
}
