package triage

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/payloads"
	"github.com/amtriage/amtriage/rules"
)

// TestAttack13StatusPageNameFallback: the public status page decides
// "public" by the incident's service NAME. An alert that matches no
// profile is named after its service/job/namespace label (ServiceName's
// fallback), so an alert from a staging cluster, or any other source the
// public profile's matchers exclude, that carries service="checkout" is
// announced to the public as "INCIDENT: checkout ...".
func TestAttack13StatusPageNameFallback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]any
	}{
		{"service label, other cluster", map[string]any{"cluster": "staging-eu1"}},
		{"job label only", map[string]any{"cluster": "dev", "service": nil, "job": "checkout"}},
		{"namespace label only", map[string]any{"cluster": "dev", "service": nil, "job": nil, "namespace": "checkout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := rules.Parse([]byte(`
status_page:
  enabled: true
services:
  - name: checkout
    match: ['service="checkout"', 'cluster="prod-eu1"']
    public: true
`))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Store.Path = t.TempDir()
			h := servingHarness(t, cfg)
			h.mustPost(payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) {
				a := payloads.FirstAlert(m)
				ls := a["labels"].(map[string]any)
				for k, v := range tc.labels {
					if v == nil {
						delete(ls, k)
					} else {
						ls[k] = v
					}
				}
				m["commonLabels"] = ls
				m["groupLabels"] = map[string]any{"alertname": "HighLatencyP99"}
			}), "")
			h.settle()
			incs := h.d.Pipeline().Board(time.Time{})
			if len(incs) != 1 {
				t.Fatalf("%d incidents, want 1", len(incs))
			}
			t.Logf("incident service %q (matched no profile)", incs[0].Service)
			res := h.do(http.MethodGet, "/status", nil, "")
			if res.code != 200 {
				t.Fatalf("GET /status = %d", res.code)
			}
			if strings.Contains(string(res.body), "INCIDENT: checkout") {
				t.Errorf("an alert outside the public profile's matchers (%v) is on the public status page:\n%s",
					tc.labels, grep(string(res.body), "checkout"))
			}
		})
	}
}

func grep(body, s string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAttack13StatusHistoryOverclaims: the status page always promises 30
// days of history ("Past incidents (last 30 days)", "No incidents in the
// last 30 days"), but the daemon keeps closed incidents for
// incidents.retention, 7 days by default: an outage 10 days ago has been
// pruned, and the public page states there was none in the last 30 days.
// The README documents the bound; the page itself should not claim more
// than it knows.
func TestAttack13StatusHistoryOverclaims(t *testing.T) {
	cfg := testConfig(t) // incidents.retention: the default, 168h
	cfg.StatusPage.Enabled = true
	h := servingHarness(t, cfg)
	res := h.do(http.MethodGet, "/status", nil, "")
	if res.code != 200 {
		t.Fatalf("GET /status = %d", res.code)
	}
	keep := time.Duration(cfg.Incidents.Retention)
	days := int(keep.Hours() / 24)
	for _, claim := range []string{"last 30 days"} {
		if strings.Contains(string(res.body), claim) && keep < 30*24*time.Hour {
			t.Errorf("the public page says %q with incidents.retention %v: it can only know the last %d days; want the page's span min(30 days, retention)\n%s",
				claim, keep, days, grep(string(res.body), "days"))
		}
	}
}

// TestAttack13IncidentPageUnboundedE2E: the same as web's
// TestAttack13IncidentPageUnbounded through the daemon: one 12.5 MiB
// webhook (under intake.max_body_bytes, every label under the webhook's
// 16 KiB bound) makes the incident page ~62 MiB.
func TestAttack13IncidentPageUnboundedE2E(t *testing.T) {
	cfg := testConfig(t)
	h := servingHarness(t, cfg)
	val := strings.Repeat("'", 16<<10) // 1 byte in JSON, "&#39;" (5) in HTML
	body := payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) {
		first := payloads.FirstAlert(m)
		var alerts []any
		for i := range 50 {
			a := map[string]any{}
			for k, v := range first {
				a[k] = v
			}
			ls := map[string]any{}
			for k, v := range first["labels"].(map[string]any) {
				ls[k] = v
			}
			ls["instance"] = fmt.Sprintf("pod-%d", i)
			for j := range 15 { // 240 KiB: under the 256 KiB of labels and annotations per alert
				ls[fmt.Sprintf("big%02d", j)] = val
			}
			a["labels"] = ls
			a["fingerprint"] = fmt.Sprintf("%016x", i+1)
			alerts = append(alerts, a)
		}
		m["alerts"] = alerts
	})
	h.mustPost(body, "")
	h.settle()
	incs := h.d.Pipeline().Board(time.Time{})
	if len(incs) != 1 {
		t.Fatalf("%d incidents", len(incs))
	}
	start := time.Now()
	res := h.do(http.MethodGet, "/incidents/"+incs[0].ID, nil, "")
	t.Logf("webhook %d bytes -> incident page %d: %d bytes in %v", len(body), res.code, len(res.body), time.Since(start))
	if len(res.body) > 4<<20 {
		t.Errorf("incident page of %d MiB from one %d MiB webhook: want the labels clipped on the page", len(res.body)>>20, len(body)>>20)
	}
}
