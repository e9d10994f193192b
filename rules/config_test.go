package rules

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// noEnv is a getenv with no AMTRIAGE_* variables, so tests do not depend on
// the environment they run in.
func noEnv(string) string { return "" }

func TestSpecExample(t *testing.T) {
	for _, k := range []string{EnvBearerToken, EnvBasicAuthPassword, EnvPagerDutyKey, EnvSlackToken, EnvGrafanaToken} {
		t.Setenv(k, "")
	}
	c, err := Load(filepath.Join("testdata", "spec-example.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:9095"},
		{"store.path", c.Store.Path, "./data"},
		{"auth token", string(c.Auth.BearerToken), "s3cr3t-bearer"},
		{"prometheus.url", c.Prometheus.URL, "http://prometheus:9090"},
		{"prometheus.timeout", c.Prometheus.Timeout, Duration(2 * time.Second)},
		{"kubernetes.enabled", c.Kubernetes.Enabled, true},
		{"pagerduty.url", c.PagerDuty.URL, "https://events.pagerduty.com"},
		{"pagerduty key", string(c.PagerDuty.RoutingKey), "pd-key-123"},
		{"slack.api_url", c.Slack.APIURL, "https://slack.com/api/"},
		{"slack token", string(c.Slack.Token), "xoxb-slack"},
		{"slack.channel", c.Slack.Channel, "#alerts"},
		{"slack.incidents_channel", c.Slack.IncidentsChannel, "#incidents"},
		{"slack.oncall_users", c.Slack.OncallUsers, []string{"U0123456"}},
		{"grafana.url", c.Grafana.URL, "http://grafana:3000"},
		{"grafana token", string(c.Grafana.Token), "glsa_grafana"},
		{"services", len(c.Services), 1},
		{"intake.max_body_bytes", c.Intake.MaxBodyBytes, int64(32 << 20)},
		{"delivery.concurrency", c.Delivery.Concurrency, 32},
		{"delivery.max_retry_after", c.Delivery.MaxRetryAfter, Duration(time.Hour)},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	s := c.Services[0]
	if s.Name != "api" || s.Namespace != "shop" || s.Deployment != "api" || s.HealthURL != "http://api.shop.svc:8080/health" {
		t.Errorf("service = %+v", s)
	}
	if got := s.Matchers.String(); got != `{namespace="shop",service="api"}` && got != `{service="api",namespace="shop"}` {
		t.Errorf("matchers = %s", got)
	}
	if s.LatencyBaseline != Duration(250*time.Millisecond) {
		t.Errorf("latency_baseline = %v", s.LatencyBaseline)
	}
	if !strings.HasPrefix(s.Queries.ErrorRatio, "sum(rate(") || !strings.HasPrefix(s.Queries.P99Latency, "histogram_quantile(") {
		t.Errorf("queries = %+v", s.Queries)
	}
}

func TestDefaults(t *testing.T) {
	drop := 0.3
	want := &Config{
		Listen: DefaultListen,
		Store:  StoreConfig{Path: DefaultStorePath},
		Intake: IntakeConfig{MaxBodyBytes: 32 << 20, MaxPending: 4096, MaxInflightBytes: 256 << 20, MinBodyRate: 16 << 10},
		Incidents: IncidentsConfig{Sev1Updates: Duration(2 * time.Minute), Sev2Updates: Duration(5 * time.Minute), StaleAfter: Duration(12 * time.Hour), Retention: Duration(168 * time.Hour),
			MonitorFor: Duration(time.Hour), VerifyEvery: Duration(30 * time.Second), VerifyTimeout: Duration(30 * time.Minute),
			Reevaluate: map[int]Duration{1: Duration(2 * time.Minute), 2: Duration(5 * time.Minute), 3: Duration(15 * time.Minute), 4: Duration(30 * time.Minute)}},
		Heartbeat:  HeartbeatConfig{Alertname: "Watchdog", MissingAfter: Duration(15 * time.Minute)},
		Escalation: EscalationConfig{After: Duration(5 * time.Minute)},
		Delivery:   DeliveryConfig{Concurrency: 32, MaxRetryAfter: Duration(time.Hour)},
		Prometheus: PrometheusConfig{Timeout: Duration(2 * time.Second), TrendWindow: Duration(10 * time.Minute), RecoveringDrop: &drop},
		Probes:     ProbesConfig{Timeout: Duration(2 * time.Second)},
		Kubernetes: KubernetesConfig{RolloutWindow: Duration(30 * time.Minute), EventWindow: Duration(15 * time.Minute), LogTimeout: Duration(2 * time.Second), LogBytes: 64 << 10},
		Slack:      SlackConfig{BusinessHours: BusinessHoursConfig{Start: "09:00", End: "18:00"}},
		Grafana:    GrafanaConfig{Render: GrafanaRender{Width: 1000, Height: 500, Timeout: Duration(10 * time.Second)}},
	}
	for name, in := range map[string]string{
		"empty":        "",
		"comment only": "# nothing here\n",
		"null":         "~\n",
		"listen only":  "listen: 127.0.0.1:9095\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		})
	}
	t.Run("listen-only file", func(t *testing.T) {
		c, err := Load(filepath.Join("testdata", "listen-only.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != "0.0.0.0:9095" || c.Store.Path != "./data" || c.Intake.MaxPending != 4096 {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("Default", func(t *testing.T) {
		if got := Default(); !reflect.DeepEqual(got, want) {
			t.Errorf("Default() = %+v, want %+v", got, want)
		}
		if !strings.Contains(string(DefaultYAML()), "\n# ") {
			t.Error("default.yaml should explain itself with comments")
		}
		Default().Listen = "changed" // each call is a fresh copy
		if Default().Listen != DefaultListen {
			t.Error("Default() shares state between calls")
		}
	})
	t.Run("explicit zero stale_after disables", func(t *testing.T) {
		c, err := Parse([]byte("incidents:\n  stale_after: 0\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Incidents.StaleAfter != 0 || c.Incidents.Retention != Duration(168*time.Hour) {
			t.Errorf("incidents = %+v", c.Incidents)
		}
	})
	t.Run("receiver endpoints", func(t *testing.T) {
		c, err := Parse([]byte("pagerduty:\n  routing_key_file: k\nslack:\n  token_file: t\n  channel: '#a'\ngrafana:\n  url: http://g:3000/\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.PagerDuty.URL != DefaultPagerDutyURL || c.Slack.APIURL != DefaultSlackAPIURL || c.Grafana.URL != "http://g:3000" {
			t.Errorf("pagerduty %q slack %q grafana %q", c.PagerDuty.URL, c.Slack.APIURL, c.Grafana.URL)
		}
		c, err = Parse([]byte("slack:\n  api_url: http://mock:8080/api\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Slack.APIURL != "http://mock:8080/api/" {
			t.Errorf("slack.api_url = %q, want a trailing slash added", c.Slack.APIURL)
		}
		if c.PagerDuty.URL != "" {
			t.Errorf("pagerduty.url = %q without a routing key", c.PagerDuty.URL)
		}
	})
}

// TestParseErrors compares the whole error list, so a test also fails when
// a spurious follow-up error appears.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "unknown top-level key",
			in:   "listen: 127.0.0.1:9095\n\n\n\n\n\nlistn: x\n",
			want: []string{`line 7: unknown key "listn" in config (did you mean "listen"?)`},
		},
		{
			name: "unknown nested key",
			in:   "auth:\n  basic_auth:\n    user: x\nservices:\n  - name: a\n    match: [a=b]\n    queries:\n      errors: x\n",
			want: []string{
				`line 3: unknown key "user" in auth.basic_auth`,
				`line 8: unknown key "errors" in services[0].queries`,
			},
		},
		{
			name: "several errors at once",
			in: `listen: nohostport
store: {path: ./d, size: 3}
intake:
  max_body_bytes: 32MiB
  max_pending: -1
incidents:
  stale_after: 12 hours
prometheus:
  url: prometheus:9090
  timeout: 2
`,
			want: []string{
				`line 1: listen: must be host:port (e.g. 127.0.0.1:9095), got "nohostport"`,
				`line 2: unknown key "size" in store`,
				`line 4: intake.max_body_bytes: want an integer, got a string`,
				`line 5: intake.max_pending: must be between 1 and 1000000, got -1`,
				`line 7: incidents.stale_after: invalid duration "12 hours": use a duration such as 250ms, 2s, 1h30m or 1d`,
				`line 9: prometheus.url: must be an absolute http(s) URL, got "prometheus:9090"`,
				`line 10: prometheus.timeout: invalid duration "2": use a duration such as 250ms, 2s, 1h30m or 1d`,
			},
		},
		{
			name: "delivery out of bounds",
			in:   "delivery:\n  concurrency: 1000\n  max_retry_after: 720h\n",
			want: []string{
				`line 2: delivery.concurrency: must be 0 (the default, 32) or between 1 and 256, got 1000`,
				`line 3: delivery.max_retry_after: must be 0 (the default, 1h) or between 1s and 1d, got 30d`,
			},
		},
		{
			name: "delivery negative",
			in:   "delivery:\n  concurrency: -1\n  max_retry_after: -5s\n",
			want: []string{
				`line 2: delivery.concurrency: must be 0 (the default, 32) or between 1 and 256, got -1`,
				`line 3: delivery.max_retry_after: invalid duration "-5s": must not be negative`,
			},
		},
		{
			name: "staleness shorter than a last-seen time can be behind",
			in:   "incidents:\n  stale_after: 5s\n",
			want: []string{`line 2: incidents.stale_after: must be 0 (off) or between 10m and 30d, got 5s`},
		},
		{
			name: "heartbeat silence out of bounds",
			in:   "heartbeat:\n  missing_after: 5s\n",
			want: []string{`line 2: heartbeat.missing_after: must be 0 (the default, 15m) or between 10s and 1d, got 5s`},
		},
		{
			name: "heartbeat silence of days",
			in:   "heartbeat:\n  alertname: ' Watchdog'\n  missing_after: 2d\n",
			want: []string{
				`line 2: heartbeat.alertname: must not start or end with spaces, got " Watchdog"`,
				`line 3: heartbeat.missing_after: must be 0 (the default, 15m) or between 10s and 1d, got 2d`,
			},
		},
		{
			name: "bad matcher",
			in:   "services:\n  - name: api\n    match:\n      - service=\"api\"\n      - 'foo'\n      - '{a=\"b\",c=~\"d\"}'\n      - ''\n",
			want: []string{
				`line 5: services[0].match[1]: invalid matcher: bad matcher format: foo`,
				`line 7: services[0].match[3]: empty matcher`,
			},
		},
		{
			name: "service without matcher or name",
			in:   "services:\n  - name: api\n  - namespace: shop\n    match: ['a=\"b\"']\n",
			want: []string{
				`line 2: services[0].match: a service needs at least one matcher, e.g. match: ['service="api"']`,
				`line 3: services[1].name: a service needs a non-empty name`,
			},
		},
		{
			name: "match written as a string",
			in:   "services:\n  - name: api\n    match: service=\"api\"\n",
			want: []string{`line 3: services[0].match: want a list, got a string (write a single item as ['...'])`},
		},
		{
			name: "duplicate service names",
			in:   "services:\n  - name: api\n    match: [a=b]\n  - name: web\n    match: [a=c]\n  - name: api\n    match: [a=d]\n",
			want: []string{`line 6: services[2].name: duplicate service name "api" (first at services[0], line 2)`},
		},
		{
			name: "bad service fields",
			in:   "services:\n  - name: api\n    match: [a=b]\n    health_url: /health\n    impact: low\n    latency_baseline: fast\n",
			want: []string{
				`line 4: services[0].health_url: must be an absolute http(s) URL, got "/health"`,
				`line 5: services[0].impact: must be "none" or left out, got "low"`,
				`line 6: services[0].latency_baseline: invalid duration "fast": use a duration such as 250ms, 2s, 1h30m or 1d`,
			},
		},
		{
			name: "inline secrets",
			in: `auth:
  bearer_token: abc
  basic_auth:
    username: am
    password: abc
pagerduty:
  routing_key: abc
slack:
  token: abc
grafana:
  token: abc
`,
			want: []string{
				`line 2: auth.bearer_token: secrets are not accepted inline; use bearer_token_file or $AMTRIAGE_BEARER_TOKEN`,
				`line 5: auth.basic_auth.password: secrets are not accepted inline; use password_file or $AMTRIAGE_BASIC_AUTH_PASSWORD`,
				`line 7: pagerduty.routing_key: secrets are not accepted inline; use routing_key_file or $AMTRIAGE_PAGERDUTY_ROUTING_KEY`,
				`line 9: slack.token: secrets are not accepted inline; use token_file or $AMTRIAGE_SLACK_TOKEN`,
				`line 11: grafana.token: secrets are not accepted inline; use token_file or $AMTRIAGE_GRAFANA_TOKEN`,
			},
		},
		{
			name: "urls",
			in:   "pagerduty:\n  url: ftp://pd\nslack:\n  api_url: https://u:pw@slack.com/api/\ngrafana:\n  url: http://\n",
			want: []string{
				`line 2: pagerduty.url: must be an absolute http(s) URL, got "ftp://pd"`,
				`line 4: slack.api_url: credentials are not accepted in URLs (https://u:xxxxx@slack.com/api/); use the *_file keys`,
				`line 6: grafana.url: must be an absolute http(s) URL, got "http:"`,
			},
		},
		{
			// Receivers are checked by Load, once their secrets are read
			// (TestReceiversUsable).
			name: "basic auth without a user",
			in:   "auth:\n  basic_auth:\n    password_file: pw\n",
			want: []string{
				`line 2: auth.basic_auth.username: required when auth.basic_auth.password_file is set`,
			},
		},
		{
			name: "thresholds",
			in: `severity:
  outage_error_ratio: 1.5
  major_latency_factor: 0
  high_p99: 0s
  fallback:
    warning: 5
  fallback_default: 0
services:
  - name: api
    match: [a=b]
    thresholds:
      minor_error_ratio: 0.2
      impact_floor: 0.3
      minor_latency_factor: 20
`,
			want: []string{
				`line 2: severity.outage_error_ratio: must be a ratio in (0, 1], got 1.5`,
				`line 3: severity.major_latency_factor: must be a factor > 1 and at most 1000, got 0`,
				`line 3: severity.major_latency_factor: minor_latency_factor 2 exceeds major_latency_factor 0; thresholds must satisfy minor_latency_factor ≤ major_latency_factor`,
				`line 4: severity.high_p99: must be between 1ms and 1h, got 0s`,
				`line 6: severity.fallback.warning: must be a severity 1..4, got 5`,
				`line 7: severity.fallback_default: must be a severity 1..4, got 0`,
				`line 12: services[0].thresholds.minor_error_ratio: minor_error_ratio 0.2 exceeds major_error_ratio 0.1; thresholds must satisfy impact_floor ≤ minor_error_ratio ≤ major_error_ratio ≤ outage_error_ratio`,
				`line 13: services[0].thresholds.impact_floor: impact_floor 0.3 exceeds minor_error_ratio 0.2; thresholds must satisfy impact_floor ≤ minor_error_ratio ≤ major_error_ratio ≤ outage_error_ratio`,
				`line 14: services[0].thresholds.minor_latency_factor: minor_latency_factor 20 exceeds major_latency_factor 0; thresholds must satisfy minor_latency_factor ≤ major_latency_factor`,
			},
		},
		{
			name: "type errors",
			in:   "kubernetes:\n  enabled: maybe\nintake:\n  max_pending: 18446744073709551615\n  max_body_bytes: 1e3\nslack:\n  oncall_users: U1\nstore: x\n",
			want: []string{
				`line 2: kubernetes.enabled: want true or false, got a string`,
				`line 4: intake.max_pending: value out of range for int`,
				`line 5: intake.max_body_bytes: must be between 1024 and 1073741824, got 1000`,
				`line 7: slack.oncall_users: want a list, got a string (write a single item as ['...'])`,
				`line 8: store: want a mapping, got a string`,
			},
		},
		{
			name: "document not a mapping",
			in:   "- listen: x\n",
			want: []string{`line 1: config: want a mapping, got a list`},
		},
		{
			name: "duplicate key",
			in:   "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
			want: []string{`line 2: duplicate key "listen" in config (first at line 1)`},
		},
		{
			name: "duplicate nested key keeps other checks",
			in:   "listen: bad\nservices:\n  - name: a\n    name: b\n  - name: c\n",
			want: []string{
				`line 1: listen: must be host:port (e.g. 127.0.0.1:9095), got "bad"`,
				`line 4: duplicate key "name" in services[0] (first at line 3)`,
				`line 5: services[1].match: a service needs at least one matcher, e.g. match: ['service="c"']`,
			},
		},
		{
			name: "undecodable items keep their index",
			in:   "services:\n  - oops\n  - name: b\n    match: [x=y, {a: b}, '', z=w]\n  - name: c\n",
			want: []string{
				`line 2: services[0]: want a mapping, got a string`,
				`line 4: services[1].match[1]: want a string, got a mapping`,
				`line 4: services[1].match[2]: empty matcher`,
				`line 5: services[2].match: a service needs at least one matcher, e.g. match: ['service="c"']`,
			},
		},
		{
			name: "two documents",
			in:   "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
			want: []string{`line 2: only one YAML document is accepted`},
		},
		{
			name: "syntax error",
			in:   "listen: [127.0.0.1:1\nstore: x\n",
			want: []string{`line 1: invalid YAML: did not find expected ',' or ']'`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors", err)
			}
			got := make([]string, len(errs))
			for i, e := range errs {
				got[i] = e.Error()
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			if err.Error() != strings.Join(got, "\n") {
				t.Errorf("Error() does not join the list with newlines: %q", err.Error())
			}
		})
	}
}

func TestErrorValues(t *testing.T) {
	_, err := Parse([]byte("auth:\n  bearer_token: x\nlistn: y\nservices:\n  - name: a\n    match: [bad]\n"))
	if !errors.Is(err, ErrInlineSecret) || !errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is does not see ErrInlineSecret and ErrUnknownKey in %v", err)
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Line != 2 || ke.Key != "auth.bearer_token" {
		t.Errorf("first KeyError = %+v", ke)
	}
	var errs Errors
	errors.As(err, &errs)
	keys := []string{}
	for _, e := range errs {
		if errors.As(e, &ke) {
			keys = append(keys, ke.Key)
		}
	}
	if want := []string{"auth.bearer_token", "", "services[0].match[0]"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "reading config") {
		t.Errorf("err = %v", err)
	}
}

func TestInflightBytesMustFitOneBody(t *testing.T) {
	_, err := Parse([]byte("intake:\n  max_body_bytes: 1048576\n  max_inflight_bytes: 1024\n"))
	if err == nil || !strings.Contains(err.Error(), "intake.max_inflight_bytes: must be at least intake.max_body_bytes (1048576), got 1024") {
		t.Fatalf("err = %v", err)
	}
	cfg, err := Parse([]byte("intake:\n  max_body_bytes: 1048576\n"))
	if err != nil || cfg.Intake.MaxInflightBytes != 8<<20 {
		t.Fatalf("default inflight = %d, %v; want 8 × max_body_bytes", cfg.Intake.MaxInflightBytes, err)
	}
}
