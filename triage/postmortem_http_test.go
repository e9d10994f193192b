package triage

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
)

// GET /api/incidents/{id}/postmortem: the Markdown post-mortem of a known
// incident, open or resolved, with the times it has in UTC; 404 JSON for
// an unknown id; behind the API's auth; GET only.
func TestPostmortemEndpoint(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = rules.Secret("pm-token-123")
	h := handlerHarness(t, cfg, withEnricher(fixedEnricher{diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment,
		Summary: "pods not starting (CrashLoopBackOff) after the rollout", Evidence: []string{"0/3 pods available"},
		Command: "kubectl rollout undo deployment/api -n shop --to-revision=1"}}))
	auth := h.authHeader()
	started := time.Date(2026, 1, 12, 14, 30, 0, 0, time.UTC)
	h.mustPost(sev1Payload("api", "firing", started), auth)
	p := h.d.Pipeline()
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	open := p.OpenIncidents()
	if len(open) != 1 {
		t.Fatalf("open incidents: %+v", open)
	}
	id := open[0].ID
	path := "/api/incidents/" + id + "/postmortem"

	res := h.do(http.MethodGet, path, nil, auth)
	if res.code != http.StatusOK || res.header.Get("Content-Type") != "text/markdown; charset=utf-8" {
		t.Fatalf("open incident: %d %q %s", res.code, res.header.Get("Content-Type"), res.body)
	}
	doc := string(res.body)
	for _, want := range []string{
		"# Post-mortem: INCIDENT: api - api is failing since 14:30 UTC",
		"- **Service:** api", "- **Severity:** peak Sev 1", "- **Start:** 2026-01-12 14:30:00 UTC", "- **End:** still open at ",
		"- 2026-01-12 14:30:00 — detected: HighErrorRate firing",
		"- 2026-01-12 14:30:00 — alert HighErrorRate started firing (Sev 1, rule 2)",
		"— declared: declared Sev 1: Q2: 62% of requests failing", "— diagnosis: pods not starting (CrashLoopBackOff)",
		"pods not starting (CrashLoopBackOff) after the rollout (config\\_or\\_deployment)", "- 0/3 pods available",
		"**Suggested by the diagnosis:** `kubectl rollout undo deployment/api -n shop --to-revision=1`",
		"## Verification\n\nnot recorded", "[incident in the API, with its timeline](</api/incidents/" + id + ">)",
		"- [ ] Save all logs and diagnostics", "- [ ] Close post-mortem ticket",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("missing %q in:\n%s", want, doc)
		}
	}

	h.mustPost(sev1Payload("api", "resolved", started), auth)
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	doc = string(h.do(http.MethodGet, path, nil, auth).body)
	// Resolved with no verification source: straight on to monitoring.
	for _, want := range []string{"- **Status:** monitoring", "- **End:** 2026-01-12 14:40:00 UTC", "- **Duration:** 10 minutes (10m0s)",
		"— resolved: all alerts resolved; verifying recovery", "— monitoring: resolved, not verified: no source"} {
		if !strings.Contains(doc, want) {
			t.Errorf("resolved: missing %q in:\n%s", want, doc)
		}
	}

	res = h.do(http.MethodGet, "/api/incidents/nope-000000000000/postmortem", nil, auth)
	if res.code != http.StatusNotFound {
		t.Errorf("unknown id: %d %s", res.code, res.body)
	}
	assertErrorBody(t, res, "nope-000000000000")
	if res := h.do(http.MethodGet, path, nil, ""); res.code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d", res.code)
	}
	if res := h.do(http.MethodPost, path, nil, auth); res.code != http.StatusMethodNotAllowed || res.header.Get("Allow") != "GET" {
		t.Errorf("POST: %d, Allow %q", res.code, res.header.Get("Allow"))
	}
}
