package boltstore

import (
	"bytes"
	"testing"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// Evidence is stored with its incident, once, and pruned with it; an
// incident the store no longer has gets none.
func TestEvidenceStoredAndPrunedWithTheIncident(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	inc := &incident.Incident{ID: "api-1", Service: "api", Status: incident.Resolved, Severity: 1}
	other := &incident.Incident{ID: "api-10", Service: "api", Status: incident.Resolved, Severity: 1}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Incidents: []*incident.Incident{inc, other}}}}); err != nil {
		t.Fatal(err)
	}
	png := []byte("\x89PNG\r\n\x1a\nfake")
	steps := []struct {
		id         string
		record     string
		wantStored bool
	}{
		{"api-1", `{"incident":"api-1"}`, true},
		{"api-1", `{"incident":"again"}`, false}, // kept once
		{"api-10", `{"incident":"api-10"}`, true},
		{"gone", `{"incident":"gone"}`, false}, // no such incident
	}
	for _, st := range steps {
		stored, err := s.PutEvidence([]store.EvidenceRecord{{ID: st.id, JSON: []byte(st.record), PNGs: map[int64][]byte{2: png}}})
		if err != nil || stored[0] != st.wantStored {
			t.Fatalf("PutEvidence(%s) = %v, %v; want %v", st.id, stored, err, st.wantStored)
		}
	}
	if rec, ok, err := s.Evidence("api-1"); err != nil || !ok || string(rec) != `{"incident":"api-1"}` {
		t.Fatalf("Evidence = %q, %v, %v", rec, ok, err)
	}
	if p, ok, _ := s.EvidencePNG("api-1", 2); !ok || !bytes.Equal(p, png) {
		t.Fatalf("EvidencePNG = %q, %v", p, ok)
	}
	if s.HasEvidence("gone") {
		t.Fatal("evidence of an unknown incident")
	}
	// Reopened: still there. Pruned: gone, and only its own.
	s.Close()
	s = openTestStore(t, dir)
	if !s.HasEvidence("api-1") {
		t.Fatal("evidence lost across a restart")
	}
	if err := s.Apply(&store.Commit{PrunedIncidents: []string{"api-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.EvidencePNG("api-1", 2); ok || s.HasEvidence("api-1") {
		t.Fatal("evidence outlived its pruned incident")
	}
	if _, ok, _ := s.EvidencePNG("api-10", 2); !ok || !s.HasEvidence("api-10") {
		t.Fatal("pruning api-1 took api-10's evidence")
	}
}
