package grafana

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/fakes/grafana"
)

// A POST whose answer is lost (the annotation was made), retried by the
// outbox or after a restart on the same state, adopts the annotation that
// carries the incident's tag instead of making a second one; the events
// after it patch that one.
func TestLostAnswerDoesNotDuplicate(t *testing.T) {
	inc := newIncident(2)
	for _, tc := range []struct {
		name    string
		first   *incident.Event
		restart bool
		other   bool // another incident's annotation exists too
	}{
		{"opened", opened(inc), false, false},
		{"opened after restart", opened(inc), true, true},
		{"resolve without opened", resolvedEvent(inc), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, n, st := setup(t, Config{})
			if tc.other {
				other := newIncident(3)
				other.ID = "web-0123456789ab"
				mustNotify(t, n, opened(other))
			}
			fake.Fail(grafana.Fault{Lost: true})
			if retry, err := n.Notify(context.Background(), tc.first); err == nil || !retry {
				t.Fatalf("lost answer: %v, %v; want a retryable error", retry, err)
			}
			if tc.restart {
				var err error
				if n, err = New(n.cfg, st); err != nil {
					t.Fatal(err)
				}
			}
			mustNotify(t, n, tc.first)
			mustNotify(t, n, resolvedEvent(inc))

			if got := len(fake.Annotations()) - boolInt(tc.other); got != 1 {
				t.Fatalf("%d annotations for the incident, want 1", got)
			}
			var mine []grafana.Annotation
			for _, a := range fake.Annotations() {
				if slices.Contains(a.Tags, "incident:"+inc.ID) {
					mine = append(mine, a)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("%d annotations for the incident, want 1: %+v", len(mine), mine)
			}
			if !mine[0].IsRegion() || !slices.Contains(mine[0].Tags, "resolved") || st.id(t, inc.ID) != mine[0].ID {
				t.Fatalf("annotation %+v not the one resolved and recorded", mine[0])
			}
			if got := fake.Count(http.MethodPost, 0); got != 1+boolInt(tc.other) {
				t.Fatalf("%d POSTs", got)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
