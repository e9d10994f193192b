package incident

import (
	"slices"
	"testing"
	"time"
)

// An occurrence whose inferred resolution is undone must lose its tombstone
// in the store too, or a restart would remember it as resolved.
func TestUndoneInferenceDeletesTombstone(t *testing.T) {
	b := NewBook()
	a := fire("api", "a", at(0), 2)
	b.Apply(batch(at(time.Minute), "g", true, a))
	if ch := b.SweepStale(at(2*time.Hour), time.Hour); len(ch.Tombstones) != 1 {
		t.Fatalf("stale sweep wrote %d tombstones, want 1", len(ch.Tombstones))
	}
	ch := b.Apply(batch(at(3*time.Hour), "g", true, a))
	if !slices.Equal(ch.DeletedTombstones, []string{a.Alert.Key}) {
		t.Fatalf("DeletedTombstones = %v, want [%s]", ch.DeletedTombstones, a.Alert.Key)
	}
	if _, ok := ch.Tombstones[a.Alert.Key]; ok {
		t.Fatal("the undone tombstone is also written")
	}
	if ch.Empty() {
		t.Fatal("Empty() ignores DeletedTombstones")
	}
}

// The title states the detection time: an earlier alert joining moves it.
func TestTitleFollowsEarlierStart(t *testing.T) {
	b := NewBook()
	b.Apply(batch(at(time.Hour), "g", false, fire("api", "late", at(time.Hour), 2)))
	b.Apply(batch(at(time.Hour), "g", false, fire("api", "early", at(0), 3)))
	inc := only(t, b)
	want := "INCIDENT: api - summary of late since " + at(0).UTC().Format("15:04") + " UTC"
	if inc.Title != want {
		t.Fatalf("title %q, want %q", inc.Title, want)
	}
}
