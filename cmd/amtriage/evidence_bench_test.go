package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkWebhookToPagerDutyWithEvidence is BenchmarkWebhookToPagerDuty
// with an evidence source configured (a Prometheus answering no data): on
// a branch with evidence every Sev 1 page is followed by an evidence
// write to state.db, which must not slow the next page. On main the same
// configuration measures the same paging path without it.
func BenchmarkWebhookToPagerDutyWithEvidence(b *testing.B) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		typ := "vector"
		if r.URL.Path == "/api/v1/query_range" {
			typ = "matrix"
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":%q,"result":[]}}`, typ)
	}))
	defer prom.Close()
	benchWebhookToPagerDuty(b, "prometheus:\n  url: "+prom.URL+"\n")
}
