package rules

import (
	"strings"
	"testing"
)

// Every numeric and duration key has a documented range: values outside it
// are refused with the key and the range, values at its ends are accepted.
func TestBounds(t *testing.T) {
	tests := []struct {
		yaml string
		want string // "" accepts; else the error contains it
	}{
		{"intake:\n  max_pending: 100000000000\n", "intake.max_pending: must be between 1 and 1000000, got 100000000000"},
		{"intake:\n  max_pending: 1000000\n", ""},
		{"intake:\n  max_pending: 1\n", ""},
		{"intake:\n  max_pending: -1\n", "intake.max_pending: must be between 1 and 1000000"},
		{"intake:\n  max_body_bytes: 512\n", "intake.max_body_bytes: must be between 1024 and 1073741824"},
		{"intake:\n  max_body_bytes: 1073741824\n  max_inflight_bytes: 1073741824\n", ""},
		{"intake:\n  max_body_bytes: 2147483648\n", "intake.max_body_bytes: must be between 1024 and 1073741824"},
		{"intake:\n  max_inflight_bytes: 100000000000000\n", "intake.max_inflight_bytes: must be between 1024 and 17179869184"},
		{"intake:\n  min_body_rate: 0\n", ""},
		{"intake:\n  min_body_rate: 2000000000\n", "intake.min_body_rate: must be 0 (off) or between 1 and 1073741824"},
		{"incidents:\n  stale_after: 0\n", ""},
		{"incidents:\n  stale_after: 1m\n", "incidents.stale_after: must be 0 (off) or between 10m and 30d"},
		{"incidents:\n  stale_after: 1000d\n", "incidents.stale_after: must be 0 (off) or between 10m and 30d"},
		{"incidents:\n  retention: 10m\n", "incidents.retention: must be between 1h and 1y"},
		{"incidents:\n  retention: 8760h\n", ""},
		{"incidents:\n  sev1_updates: 10s\n", "incidents.sev1_updates: must be between 30s and 1d"},
		{"incidents:\n  sev2_updates: 48h\n", "incidents.sev2_updates: must be between 30s and 1d"},
		{"incidents:\n  reevaluate: {1: 1s}\n", "incidents.reevaluate.1: must be 0 (off) or between 5s and 1d"},
		{"incidents:\n  reevaluate: {4: 0}\n", ""},
		{"incidents:\n  reevaluate: {3: 100d}\n", "incidents.reevaluate.3: must be 0 (off) or between 5s and 1d"},
		{"prometheus:\n  timeout: 1ms\n", "prometheus.timeout: must be between 100ms and 1m"},
		{"prometheus:\n  timeout: 5m\n", "prometheus.timeout: must be between 100ms and 1m"},
		{"prometheus:\n  trend_window: 30s\n", "prometheus.trend_window: must be between 1m and 1d"},
		{"prometheus:\n  recovering_drop: 1\n", "prometheus.recovering_drop: must be a share between 0 and 1 exclusive"},
		{"probes:\n  timeout: 10m\n", "probes.timeout: must be between 100ms and 1m"},
		{"kubernetes:\n  rollout_window: 30d\n", "kubernetes.rollout_window: must be between 1m and 1w"},
		{"kubernetes:\n  event_window: 10s\n", "kubernetes.event_window: must be between 1m and 1d"},
		{"kubernetes:\n  log_timeout: 0s\n", "kubernetes.log_timeout: must be between 100ms and 1m"},
		{"kubernetes:\n  log_bytes: 1073741824\n", "kubernetes.log_bytes: must be between 1024 and 16777216"},
		{"pagerduty:\n  events_per_minute: 0\n", ""},
		{"pagerduty:\n  events_per_minute: -5\n", "pagerduty.events_per_minute: must be 0 (the receiver's default, 120) or between 1 and 1000000"},
		{"pagerduty:\n  events_per_minute: 120\n", ""},
		{"severity:\n  major_latency_factor: 1\n", "severity.major_latency_factor: must be a factor > 1 and at most 1000"},
		{"severity:\n  minor_latency_factor: 0.5\n", "severity.minor_latency_factor: must be a factor > 1 and at most 1000"},
		{"severity:\n  major_latency_factor: 5000\n", "severity.major_latency_factor: must be a factor > 1 and at most 1000"},
		{"severity:\n  outage_error_ratio: 1.5\n", "severity.outage_error_ratio: must be a ratio in (0, 1]"},
		{"severity:\n  high_p99: 2h\n", "severity.high_p99: must be between 1ms and 1h"},
		{"grafana:\n  url: http://g\n  render: {dashboard_uid: d, panel_ids: [2, 3], width: 800, height: 400, timeout: 30s}\n", ""},
		{"grafana:\n  url: http://g\n  render: {dashboard_uid: d, panel_ids: [2], width: 50000}\n", "grafana.render.width: must be between 100 and 4000"},
		{"grafana:\n  url: http://g\n  render: {dashboard_uid: d, panel_ids: [2], timeout: 10m}\n", "grafana.render.timeout: must be between 1s and 2m"},
		{"grafana:\n  url: http://g\n  render: {dashboard_uid: d, panel_ids: [1, 2, 3, 4, 5]}\n", "grafana.render.panel_ids: at most 4 panels, got 5"},
		{"grafana:\n  url: http://g\n  render: {dashboard_uid: d, panel_ids: [0]}\n", "grafana.render.panel_ids[0]: must be a panel id"},
		{"grafana:\n  url: http://g\n  render: {panel_ids: [2]}\n", "grafana.render.dashboard_uid: required"},
		{"grafana:\n  render: {dashboard_uid: d, panel_ids: [2]}\n", "grafana.render: needs grafana.url"},
		{"external_url: https://amtriage.example.com/\n", ""},
		{"alertmanager:\n  url: http://am:9093/\n  basic_auth: {username: u, password_file: /p}\n", ""},
		{"alertmanager:\n  url: am:9093\n", "alertmanager.url: must be an absolute http(s) URL"},
		{"slack:\n  allowed_teams: [T0123ABC]\n", ""},
		{"slack:\n  allowed_teams: [acme]\n", "slack.allowed_teams[0]: must be a Slack workspace ID"},
		{"alertmanager:\n  url: http://am\n  basic_auth: {username: u}\n", "alertmanager.basic_auth: username and password_file must be set together"},
		{"alertmanager:\n  bearer_token_file: /t\n", "alertmanager.url: is required when alertmanager auth is set"},
		{"actions:\n  rollback: {enabled: true, allowed_users: [U123]}\nkubernetes: {enabled: true}\n", ""},
		{"actions:\n  rollback: {enabled: true}\nkubernetes: {enabled: true}\n", "actions.rollback.allowed_users: must list who may roll back"},
		{"actions:\n  rollback: {enabled: true, allowed_users: [U123]}\n", "actions.rollback.enabled: needs kubernetes.enabled"},
		{"actions:\n  rollback: {allowed_users: [ana]}\n", "actions.rollback.allowed_users[0]: must be a Slack user ID"},
		{"external_url: amtriage.example.com\n", "external_url: must be an absolute http(s) URL"},
		{"services:\n  - name: a\n    match: ['a=\"b\"']\n    latency_baseline: 2h\n", "services[0].latency_baseline: must be 0 (none) or between 1ms and 1h"},
		{"services:\n  - name: a\n    match: ['a=\"b\"']\n    thresholds: {minor_latency_factor: 1}\n", "services[0].thresholds.minor_latency_factor: must be a factor > 1"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(strings.TrimSpace(tt.yaml), "\n", " "), func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// Keys left out of the file are not range-checked: their defaults must be
// within the documented ranges.
func TestDefaultsWithinLimits(t *testing.T) {
	c := Default()
	for _, l := range limits {
		if val := l.get(c); !(val == 0 && l.off) && (val < l.min || val > l.max) {
			t.Errorf("default %s = %d is outside %d..%d", l.key, val, l.min, l.max)
		}
	}
}
