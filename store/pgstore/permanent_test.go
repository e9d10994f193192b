package pgstore

import (
	"errors"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// What PostgreSQL refuses for the values themselves is store.ErrPermanent
// (the pipeline dead-letters it); not leading, or being deposed, is not.
func TestErrorsTheSameWriteMeetsAgainArePermanent(t *testing.T) {
	s, _, _ := seeded(t, "leader", time.Hour)
	bad := &incident.Incident{ID: "api-\xff", Service: "api", Status: incident.Firing} // not UTF-8: a text key refuses it
	err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Incidents: []*incident.Incident{bad}}}})
	if err == nil || !errors.Is(err, store.ErrPermanent) {
		t.Fatalf("Apply of an incident id that is not UTF-8: %v; want store.ErrPermanent", err)
	}
	if err := s.Lead(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	err = s.Apply(&store.Commit{LastSeq: 2})
	if !errors.Is(err, ErrNotLeader) || errors.Is(err, store.ErrPermanent) {
		t.Fatalf("Apply on a standby: %v; want ErrNotLeader, not permanent", err)
	}
}
