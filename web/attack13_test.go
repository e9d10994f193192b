package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/view"
)

// TestAttack13FilterAmplification: a query that repeats a valid filter
// value is accepted (every value is allowed), and each of the ~60 filter
// links and the prev/next links copies the whole query: a 100 KB URL
// answers a page of megabytes, rendered on every 15 s refresh.
func TestAttack13FilterAmplification(t *testing.T) {
	src := &fakeSource{}
	for i := range 450 { // three pages, 50 services (maxFilterOptions): every filter's links are shown
		src.incs = append(src.incs, inc(fmt.Sprintf("inc-%d", i), severity.Level(1+i%4), incident.StateOpen, fmt.Sprintf("svc%d", i%50), time.Minute))
	}
	h := newUI(t, src).Handler()
	q := "/?page=2" + strings.Repeat("&state=open", 9000) // 99 KB, well under Go's 1 MB header limit
	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, q, nil))
	took := time.Since(start)
	t.Logf("request %d bytes -> %d %d bytes in %v", len(q), rec.Code, rec.Body.Len(), took)
	if rec.Code == http.StatusOK && rec.Body.Len() > 1<<20 {
		t.Errorf("a %d-byte query answers a %d-byte page (%.0f×): the filter links copy every repeated value; want duplicates dropped (or a 400 past a bound)",
			len(q), rec.Body.Len(), float64(rec.Body.Len())/float64(len(q)))
	}
}

// TestAttack13IncidentPageUnbounded: the board clips its cells, the
// incident page clips nothing. The webhook accepts 256 KiB of labels and
// annotations per alert (16 KiB a value) and the page shows 50 alerts,
// every label escaped: '<' is "&lt;", four times its size ("'" is
// "&#39;", five: see TestAttack13IncidentPageUnboundedE2E in triage).
// 16 labels of 16 KiB '<' on each of 50 alerts (12.5 MiB of alert text)
// make a 50 MiB page, buffered whole in memory and refetched every 30 s
// by each open tab.
func TestAttack13IncidentPageUnbounded(t *testing.T) {
	v := inc("big", 1, incident.StateOpen, "api", time.Minute)
	val := strings.Repeat("<", 16<<10) // webhook.MaxLabelValueBytes
	labels := map[string]string{}
	for i := range 16 {
		labels[fmt.Sprintf("l%02d", i)] = val
	}
	for i := range view.MaxAlerts {
		v.Alerts = append(v.Alerts, view.Alert{Fingerprint: fmt.Sprint(i), Alertname: "Big", Status: "firing", StartsAt: now, Severity: 1, Labels: labels})
	}
	v.AlertsTotal = 5000
	src := &fakeSource{details: map[string]view.Detail{"big": {Incident: v}}}
	h := newUI(t, src).Handler()
	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/incidents/big", nil))
	t.Logf("%d: %d bytes in %v", rec.Code, rec.Body.Len(), time.Since(start))
	if rec.Body.Len() > 4<<20 {
		t.Errorf("incident page of %d MiB for %d alerts of %d × 16 KiB labels: want the labels clipped on the page (the API has them whole), under 4 MiB",
			rec.Body.Len()>>20, view.MaxAlerts, len(labels))
	}
}

// TestAttack13BadFilterEchoUnclipped: the 400 page quotes the unknown
// value whole (the 404 page clips the id to 160 runes): a URL near Go's
// 1 MB header limit is reflected whole into the page. Escaped, so no XSS,
// but it is an unbounded reflection of attacker text under the daemon's
// name (phishing text in a link sent to an on-call), and unlike the rest.
func TestAttack13BadFilterEchoUnclipped(t *testing.T) {
	h := newUI(t, &fakeSource{}).Handler()
	val := "Your+session+expired.+Sign+in+again+at+https://amtriage-login.example" + strings.Repeat("x", 200000)
	a := get(t, h, http.MethodGet, "/?state="+val)
	if a.code != http.StatusBadRequest {
		t.Fatalf("code %d", a.code)
	}
	if len(a.body) > 20000 {
		t.Errorf("400 page of %d bytes for a %d-byte value: want the value clipped (clip(maxCell, v)) as the 404 page does", len(a.body), len(val))
	}
}
