package triage

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The inputs that used to be answered 200 and then failed every commit,
// retried forever, while every later notification waited behind them: they
// are refused at intake naming the field, and the next notification is
// processed.
func TestInputsTheStoreCannotHoldAreRefused(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	alert := func(fields string) []byte {
		return []byte(`{"version":"4","status":"firing","receiver":"r","groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"X","service":"s"},` + fields + `}]}`)
	}
	for _, tc := range []struct {
		name, field string
		body        []byte
	}{
		{"year 10000 in UTC", "startsAt", alert(`"startsAt":"9999-12-31T23:59:59-23:59","fingerprint":"abc"`)},
		{"40 KB fingerprint", "fingerprint", alert(`"startsAt":"2026-01-01T00:00:00Z","fingerprint":"` + strings.Repeat("f", 40000) + `"`)},
	} {
		res := h.post(tc.body, "")
		if res.code != http.StatusBadRequest {
			t.Fatalf("%s: POST = %d %s, want 400", tc.name, res.code, res.body)
		}
		assertErrorBody(t, res, tc.field)
	}
	h.mustPost(alertPayload("api", "firing", time.Now().Add(-time.Minute)), "")
	h.settle()
	if open := h.d.Pipeline().OpenIncidents(); len(open) != 1 || open[0].Service != "api" {
		t.Fatalf("open incidents %+v, want the api incident", open)
	}
}
