package postmortem

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.md")

var t0 = time.Date(2026, 1, 12, 14, 30, 0, 0, time.UTC)

func resolvedReport() Report {
	return Report{
		ID: "api-0123456789ab", Title: "INCIDENT: api - 62% errors since 14:30 UTC", Service: "api",
		Severity: 2, PeakSeverity: 1, Status: "resolved", Start: t0, End: t0.Add(42*time.Minute + 10*time.Second), Now: t0.Add(time.Hour),
		Impact: []string{"peak severity Sev 1", "deciding reason: Q2: 62% of requests failing (> 50%) [prometheus]"},
		// Out of order on purpose: the renderer sorts by time.
		Timeline: []Entry{
			{t0.Add(42*time.Minute + 10*time.Second), "resolved: every alert resolved"},
			{t0, "detected: the first alert started firing"},
			{t0.Add(6 * time.Minute), "escalated: Sev 1 with no identified cause"},
			{t0.Add(time.Minute), "declared Sev 1"},
		},
		RootCause:         "config or bad deployment: 3/3 pods CrashLoopBackOff (config_or_deployment)",
		RootCauseEvidence: []string{"0/3 pods available"},
		SuggestedFix:      "kubectl rollout undo deployment/api -n shop --to-revision=6",
		Evidence: []Link{
			{"incident in the API", "/api/incidents/api-0123456789ab"},
			{"source of HighErrorRate", "http://prometheus:9090/graph?g0.expr=up"},
			{"evil", "javascript:alert(1)"},
		},
	}
}

// The document's shape, against a golden file (go test -update rewrites it).
func TestRenderGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, resolvedReport()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "resolved.md")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("post-mortem differs from %s:\n%s", golden, got)
	}
}

// Every section is there, with "not recorded" for what is not known, and
// every item of the runbook's post-incident checklist.
func TestRenderSectionsAndChecklist(t *testing.T) {
	var b bytes.Buffer
	r := Report{ID: "x", Service: "api", PeakSeverity: 1, Severity: 1, Status: "firing", Start: t0, Now: t0.Add(7 * time.Minute)}
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	for _, want := range []string{
		"## Summary", "- **End:** still open at 2026-01-12 14:37:00 UTC", "- **Duration:** 7 minutes (7m0s) so far",
		"## Impact\n\n- not measured", "## Timeline (UTC)\n\n- none recorded", "## Root cause\n\nNot identified.",
		"## Fix\n\n- **Applied:** not recorded", "## Verification\n\nnot recorded", "## Evidence\n\n- none recorded",
		"## Post-incident checklist",
		"- [ ] Save all logs and diagnostics", `- [ ] Notify team: "incident resolved"`,
		"- [ ] Schedule post-mortem meeting", "- [ ] Identify owner for each action item",
		"- [ ] Update monitoring/alerting", "- [ ] Close post-mortem ticket",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("missing %q in:\n%s", want, doc)
		}
	}
	items := strings.Count(doc, "- [ ] ")
	if items != 15 {
		t.Errorf("%d checklist items, want the runbook's 15", items)
	}
}

// Text from alerts cannot add links, HTML or headings.
func TestRenderEscapesAlertText(t *testing.T) {
	var b bytes.Buffer
	evil := "<script>x</script> [click](javascript:alert(1)) # `code` *bold*"
	r := Report{ID: "x`y", Title: evil, Service: evil, Status: "firing", Start: t0, Now: t0,
		Timeline: []Entry{{t0, "alert " + evil + " started firing"}}, Impact: []string{evil}}
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	for _, bad := range []string{"<script>", "[click](", "`code`", "*bold*", "x`y"} {
		if strings.Contains(doc, bad) {
			t.Errorf("%q survived in:\n%s", bad, doc)
		}
	}
}
