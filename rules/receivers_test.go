package rules

import (
	"strings"
	"testing"
)

// A receiver the file (or the environment) configures but that cannot work
// is an error naming the key to set, never a receiver silently off.
func TestReceiversUsable(t *testing.T) {
	tests := []struct {
		name string
		in   string
		env  map[string]string
		want []string // nil: accepted
	}{
		{"nothing configured", "listen: 127.0.0.1:9095\n", nil, nil},
		{"pagerduty url, no key", "pagerduty:\n  url: https://events.pagerduty.com\n", nil,
			[]string{"line 2: pagerduty.routing_key_file: PagerDuty is configured (pagerduty.url) but has no routing key"}},
		{"pagerduty rate, no key", "pagerduty:\n  events_per_minute: 60\n", nil,
			[]string{"pagerduty.routing_key_file: PagerDuty is configured (pagerduty.events_per_minute)"}},
		{"pagerduty key from the environment", "pagerduty:\n  url: https://events.pagerduty.com\n", map[string]string{EnvPagerDutyKey: "k"}, nil},
		{"pagerduty per-service key only", "pagerduty:\n  url: https://events.pagerduty.com\nservices:\n  - name: a\n    match: ['a=\"b\"']\n    routing: {pagerduty_routing_key_file: secrets/pd-routing-key}\n", nil, nil},
		{"grafana url, no token", "grafana:\n  url: http://grafana:3000\n", nil,
			[]string{"line 2: grafana.token_file: Grafana is configured (grafana.url) but has no token"}},
		{"grafana token file, no url", "grafana:\n  token_file: secrets/grafana-token\n", nil,
			[]string{"line 2: grafana.url: Grafana is configured (grafana.token_file) but has no url"}},
		{"grafana token from the environment, no url", "listen: 127.0.0.1:9095\n", map[string]string{EnvGrafanaToken: "g"},
			[]string{"grafana.url: Grafana is configured ($AMTRIAGE_GRAFANA_TOKEN) but has no url"}},
		{"slack channel, no token", "slack:\n  channel: '#a'\n", nil,
			[]string{"line 2: slack.token_file: Slack is configured (slack.channel) but has no token"}},
		{"slack token, no channel", "slack:\n  token_file: secrets/slack-token\n", nil,
			[]string{"slack.channel: Slack has a token but no channel"}},
		{"slack token from the environment, no channel", "listen: 127.0.0.1:9095\n", map[string]string{EnvSlackToken: "x"},
			[]string{"slack.channel: Slack has a token but no channel"}},
		{"slack incidents channel serves for both", "slack:\n  token_file: secrets/slack-token\n  incidents_channel: '#inc'\n", nil, nil},
		{"secret file missing, with the other errors", "grafana:\n  url: http://grafana:3000\n  token_file: nope\nintake:\n  max_pending: 0\n", nil,
			[]string{"line 3: grafana.token_file: reading secret file", "line 5: intake.max_pending"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			_, err := load([]byte(tt.in), "testdata", getenv)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("errors %q lack %q", err, w)
				}
			}
		})
	}
}
