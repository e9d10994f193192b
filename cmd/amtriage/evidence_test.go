package main

import (
	"testing"

	"github.com/amtriage/amtriage/rules"
)

// Slack links evidence only where it is reachable and gathered.
func TestEvidenceURL(t *testing.T) {
	tests := []struct {
		name string
		cfg  rules.Config
		want string // "" : no link
	}{
		{"external_url and Prometheus", rules.Config{ExternalURL: "https://amtriage.example.com", Prometheus: rules.PrometheusConfig{URL: "http://p:9090"}},
			"https://amtriage.example.com/api/incidents/api%2Fx-1/evidence"},
		{"external_url and Kubernetes", rules.Config{ExternalURL: "https://a.example.com", Kubernetes: rules.KubernetesConfig{Enabled: true}},
			"https://a.example.com/api/incidents/api%2Fx-1/evidence"},
		{"no external_url", rules.Config{Prometheus: rules.PrometheusConfig{URL: "http://p:9090"}}, ""},
		{"no evidence source", rules.Config{ExternalURL: "https://a.example.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := evidenceURL(&tt.cfg)
			switch {
			case tt.want == "" && f != nil:
				t.Fatalf("a link: %s", f("api/x-1"))
			case tt.want != "" && f == nil:
				t.Fatalf("no link, want %s", tt.want)
			case tt.want != "" && f("api/x-1") != tt.want:
				t.Fatalf("link %s, want %s", f("api/x-1"), tt.want)
			}
		})
	}
}
