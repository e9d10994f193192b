package incident

import (
	"slices"
	"testing"
	"time"
)

// ATTACK: an Unsilence that fails (Alertmanager refuses the DELETE: 403
// from an auth proxy that lets reads through, a 4xx) is answered to the
// user, but the incident stays "being expired": outcome() clears
// Unsilencing only when the result's request key is the silence's
// RequestKey, which is the Silence click's key, never the Unsilence's. So
// the user who is told "failed" and clicks Unsilence again is refused
// "silence sil-1 is being expired" for PendingFor (10 minutes), and the
// incident (API, message) says an unsilence is under way when none is.
// A failed Unsilence should clear Unsilencing (match the request key
// against the awaited unsilence request, inc.answered).
func TestAttackFailedUnsilenceBlocksTheNextOne(t *testing.T) {
	b := NewBook()
	id := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1))).Incidents[0].ID
	m := time.Minute
	steps := []struct {
		name string
		act  Act
	}{
		{"silence", Act{Key: "s1", Kind: ActSilence, At: at(m), By: "<@U1>", SilenceFor: time.Hour}},
		{"made", Act{Key: "result:s1", Kind: ActResult, At: at(2 * m), By: "amtriage",
			Result: &ActOutcome{For: ActSilence, RequestKey: "s1", SilenceID: "sil-1", Until: at(62 * m)}}},
		{"unsilence", Act{Key: "u1", Kind: ActUnsilence, At: at(3 * m), By: "<@U2>"}},
		{"it fails at once", Act{Key: "result:u1", Kind: ActResult, At: at(3*m + time.Second), By: "amtriage",
			Result: &ActOutcome{For: ActUnsilence, RequestKey: "u1", SilenceID: "sil-1", Error: "alertmanager: expire silence sil-1: HTTP 403: forbidden"}}},
	}
	for _, s := range steps {
		if _, err := b.Act(id, s.act); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if s := b.Get(id).Silence; s == nil || s.Unsilencing {
		t.Errorf("after the unsilence failed the silence is %+v: still marked Unsilencing", s)
	}
	again, err := b.Act(id, Act{Key: "u2", Kind: ActUnsilence, At: at(4 * m), By: "<@U2>"})
	if err != nil {
		t.Fatal(err)
	}
	if got := eventKinds(again); !slices.Equal(got, []EventKind{UnsilenceRequested}) {
		text := ""
		if len(again.Events) > 0 && again.Events[0].Act != nil {
			text = again.Events[0].Act.Text
		}
		t.Errorf("Unsilence clicked again after being told it failed: events %v (%q), want it requested again", got, text)
	}
}
