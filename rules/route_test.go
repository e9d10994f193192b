package rules

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRouteFor(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api-key"), []byte("api-routing-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfgPath, []byte(`
routing:
  grafana: [1, 2, 3]
slack:
  token_file: api-key
  channel: "#team"
  incidents_channel: "#incidents"
services:
  - name: api
    match: ['service="api"']
    routing:
      pagerduty: [1]
      slack_channel: "#api"
      pagerduty_routing_key_file: api-key
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	api, other := cfg.RouteFor("api"), cfg.RouteFor("checkout")
	if api.PagerDuty.Has(2) || !api.PagerDuty.Has(1) || !other.PagerDuty.Has(2) || other.PagerDuty.Has(3) {
		t.Errorf("pagerduty: api %v other %v", api.PagerDuty, other.PagerDuty)
	}
	if api.Grafana.Has(4) || !other.Grafana.Has(3) || !other.Slack.Has(4) {
		t.Errorf("global grafana override or slack default lost: api %v other %v", api.Grafana, other.Slack)
	}
	if api.SlackChannel != "#api" || other.SlackChannel != "#team" || api.SlackIncidentsChannel != "#incidents" {
		t.Errorf("channels: api %q/%q other %q", api.SlackChannel, api.SlackIncidentsChannel, other.SlackChannel)
	}
	if api.PagerDutyRoutingKey != "api-routing-key-0123456789abcdef" || other.PagerDutyRoutingKey != "" {
		t.Errorf("per-service routing key not resolved")
	}
	cfg.Shadow = true
	if r := cfg.RouteFor("api"); r.PagerDuty.Has(1) || r.Slack.Has(1) || !r.Grafana.Has(1) {
		t.Errorf("shadow mode must page nobody but still annotate: %+v", r)
	}
}

func TestRoutingSeveritiesValidated(t *testing.T) {
	_, err := Parse([]byte("routing:\n  pagerduty: [0, 5]\n"))
	if err == nil {
		t.Fatal("severity 0 and 5 accepted")
	}
}
