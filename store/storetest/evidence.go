package storetest

import (
	"slices"
	"testing"

	"github.com/amtriage/amtriage/store"
)

func testEvidence(t *testing.T, b Backend) {
	s, reopen := b(t)
	commit, _ := opened(1, nil, "api-1", "api-2")
	apply(t, s, commit)
	batch := []store.EvidenceRecord{
		{ID: "api-1", JSON: []byte(`{"v":1}`), PNGs: map[int64][]byte{7: []byte("\x89PNG-7"), 9: []byte("\x89PNG-9")}},
		{ID: "api-none", JSON: []byte(`{"v":0}`)}, // no such incident
		{ID: "api-2", JSON: []byte(`{"v":2}`)},
	}
	stored, err := s.PutEvidence(batch)
	if err != nil {
		t.Fatalf("PutEvidence: %v", err)
	}
	if want := []bool{true, false, true}; !slices.Equal(stored, want) {
		t.Errorf("stored %v, want %v", stored, want)
	}
	// Only once: a second record for api-1 changes nothing.
	again, err := s.PutEvidence([]store.EvidenceRecord{{ID: "api-1", JSON: []byte(`{"v":"again"}`), PNGs: map[int64][]byte{7: []byte("new")}}})
	if err != nil || !slices.Equal(again, []bool{false}) {
		t.Errorf("second PutEvidence = %v, %v; want [false]", again, err)
	}
	s = reopen()
	for _, tc := range []struct {
		id   string
		want string
		ok   bool
	}{{"api-1", `{"v":1}`, true}, {"api-2", `{"v":2}`, true}, {"api-none", "", false}} {
		v, ok, err := s.Evidence(tc.id)
		if err != nil || ok != tc.ok || string(v) != tc.want {
			t.Errorf("Evidence(%s) = %q, %v, %v; want %q, %v", tc.id, v, ok, err, tc.want, tc.ok)
		}
		if got := s.HasEvidence(tc.id); got != tc.ok {
			t.Errorf("HasEvidence(%s) = %v, want %v", tc.id, got, tc.ok)
		}
	}
	for _, tc := range []struct {
		id    string
		panel int64
		want  string
		ok    bool
	}{{"api-1", 7, "\x89PNG-7", true}, {"api-1", 9, "\x89PNG-9", true}, {"api-1", 8, "", false}, {"api-2", 7, "", false}} {
		v, ok, err := s.EvidencePNG(tc.id, tc.panel)
		if err != nil || ok != tc.ok || string(v) != tc.want {
			t.Errorf("EvidencePNG(%s, %d) = %q, %v, %v; want %q, %v", tc.id, tc.panel, v, ok, err, tc.want, tc.ok)
		}
	}
}
