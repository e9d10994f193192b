package triage

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestIncidentHistoryAPI: GET /api/incidents?state= filters by lifecycle
// state (default open, as before; unknown → 400 naming the states), and
// GET /api/incidents/{id} answers one with its timeline (unknown → 404),
// both behind auth.
func TestIncidentHistoryAPI(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	h := servingHarness(t, cfg)
	auth := h.authHeader()
	started := time.Now().Add(-5 * time.Minute).UTC()
	h.mustPost(alertPayload("api", "firing", started), auth)
	h.mustPost(alertPayload("db", "firing", started), auth)
	h.settle()
	h.mustPost(alertPayload("api", "resolved", started), auth)
	h.settle()

	type list struct {
		Incidents []struct {
			ID, Service, State string
		} `json:"incidents"`
		Total int `json:"total"`
	}
	get := func(path string) (int, []byte) {
		res := h.do(http.MethodGet, path, nil, auth)
		return res.code, res.body
	}
	services := func(path string) []string {
		t.Helper()
		code, body := get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		var l list
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, inc := range l.Incidents {
			out = append(out, inc.Service+":"+inc.State)
		}
		return out
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/api/incidents", []string{"db:open"}},
		{"/api/incidents?state=open", []string{"db:open"}},
		{"/api/incidents?state=monitoring", []string{"api:monitoring"}},
		{"/api/incidents?state=verifying", []string{}},
		{"/api/incidents?state=closed", []string{}},
		{"/api/incidents?state=all", []string{"api:monitoring", "db:open"}},
	} {
		got := services(tt.path)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("GET %s: %q, want %q", tt.path, got, tt.want)
		}
	}

	code, body := get("/api/incidents?state=resolved")
	if code != http.StatusBadRequest || !strings.Contains(string(body), `open, verifying, monitoring, closed, all`) {
		t.Errorf("unknown state: %d %s", code, body)
	}

	var l list
	_, body = get("/api/incidents?state=monitoring")
	if err := json.Unmarshal(body, &l); err != nil || len(l.Incidents) != 1 {
		t.Fatalf("%s %v", body, err)
	}
	id := l.Incidents[0].ID
	code, body = get("/api/incidents/" + id)
	if code != http.StatusOK {
		t.Fatalf("GET /api/incidents/%s = %d %s", id, code, body)
	}
	var d struct {
		ID, State, Verification string
		Timeline                []struct {
			At   time.Time
			Kind string
		}
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range d.Timeline {
		kinds = append(kinds, e.Kind)
		if e.At.Location() != time.UTC || e.At.IsZero() {
			t.Errorf("entry %s at %v, want a UTC time", e.Kind, e.At)
		}
	}
	if d.ID != id || d.State != "monitoring" || d.Verification != "resolved, not verified: no source" ||
		!slices.Equal(kinds, []string{"detected", "declared", "update", "resolved", "monitoring", "update"}) {
		t.Errorf("detail %s", body)
	}
	if !strings.Contains(string(body), `"at":"`) || !strings.HasSuffix(strings.TrimSpace(string(body)), "}") {
		t.Errorf("detail JSON %s", body)
	}

	code, body = get("/api/incidents/" + id + "/postmortem")
	md := string(body)
	if code != http.StatusOK {
		t.Fatalf("postmortem: %d %s", code, body)
	}
	for _, want := range []string{"# Post-mortem: INCIDENT: api", "## Summary\n", "## Impact\n", "## Timeline (UTC)\n", "— declared: declared Sev 2",
		"— monitoring: resolved, not verified: no source; monitoring", "## Root cause\n", "## Fix\n", "## Verification\n\nresolved, not verified: no source\n",
		"## Evidence\n", "## Post-incident checklist\n", "- [ ] Save all logs and diagnostics"} {
		if !strings.Contains(md, want) {
			t.Errorf("post-mortem lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "/evidence") {
		t.Errorf("post-mortem links evidence that was never saved (no evidence source here):\n%s", md)
	}
	if code, _ := get("/api/incidents/nope/postmortem"); code != http.StatusNotFound {
		t.Errorf("post-mortem of an unknown id: %d", code)
	}
	code, body = get("/api/incidents/nope")
	if code != http.StatusNotFound || !strings.Contains(string(body), `"status":"error"`) {
		t.Errorf("unknown id: %d %s", code, body)
	}
	if res := h.do(http.MethodGet, "/api/incidents/"+id, nil, ""); res.code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d", res.code)
	}
	if res := h.do(http.MethodPost, "/api/incidents/"+id, nil, auth); res.code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.code)
	}
}
