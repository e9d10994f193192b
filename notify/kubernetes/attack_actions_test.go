package kubernetes_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/notify/notifytest"
)

// ATTACK: a rollback request whose key is near actions.MaxKeyBytes (the
// endpoint stores keys up to 512 bytes) gets an outcome keyed
// "result:"+key, 519 bytes, which the inbox refuses (Validate). Report
// fails, the receiver says retry, and every retry reports the same
// unstorable outcome for the outbox's 24 hours: the rollback is done (or
// refused) but the user never hears, and the incident awaits it. The
// alertmanager receiver hashes such a key (alertmanager.ResultKey); this
// one should too.
func TestAttackRollbackResultKeyOverTheLimit(t *testing.T) {
	r := &reports{}
	n := newReceiver(t, fake.NewClientset(), &notifytest.MemState{}, r)
	ev := request("shop", 2, 1)
	ev.Act.Key = "slack:T1:U1:rollback:" + strings.Repeat("9", actions.MaxKeyBytes-len("slack:T1:U1:rollback:"))
	if len(ev.Act.Key) != actions.MaxKeyBytes {
		t.Fatalf("key of %d bytes", len(ev.Act.Key))
	}
	for attempt := range 3 {
		retry, err := n.Notify(context.Background(), ev)
		if retry {
			t.Errorf("attempt %d: retry with %v; the outcome of a %d-byte request key can never be stored", attempt+1, err, len(ev.Act.Key))
		}
	}
	// A redelivery may report again: under the same key, applied once.
	keys := map[string]bool{}
	for _, a := range r.got {
		keys[a.Key] = true
	}
	if len(r.got) == 0 || len(keys) != 1 {
		t.Errorf("%d outcomes stored under %d keys, want at least one, all under one key", len(r.got), len(keys))
	}
}
