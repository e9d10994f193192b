// Package rules is amtriage's configuration: service profiles, matchers,
// thresholds and receivers; loading, defaults and validation.
package rules

import (
	"slices"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// Config is the whole configuration file. Every key of the SPEC's minimal
// shape exists here with the SPEC's meaning.
type Config struct {
	Listen string `yaml:"listen"`
	// ExternalURL is where users reach amtriage (its API, behind the same
	// auth): the base of the evidence links in Slack. Empty: no links.
	ExternalURL string `yaml:"external_url"`
	// Shadow classifies and annotates (log, Grafana) but pages nobody: no
	// PagerDuty, no Slack. For running beside existing Alertmanager routes.
	Shadow     bool             `yaml:"shadow"`
	Routing    RoutingConfig    `yaml:"routing"` // the routing table; profiles override
	TLS        TLSConfig        `yaml:"tls"`
	Auth       AuthConfig       `yaml:"auth"`
	Store      StoreConfig      `yaml:"store"`
	Intake     IntakeConfig     `yaml:"intake"`
	Incidents  IncidentsConfig  `yaml:"incidents"`
	Escalation EscalationConfig `yaml:"escalation"`
	Heartbeat  HeartbeatConfig  `yaml:"heartbeat"`
	Delivery   DeliveryConfig   `yaml:"delivery"`
	Severity   ThresholdsConfig `yaml:"severity"` // global defaults; profiles override
	Prometheus PrometheusConfig `yaml:"prometheus"`
	Probes     ProbesConfig     `yaml:"probes"`
	Kubernetes KubernetesConfig `yaml:"kubernetes"`
	PagerDuty  PagerDutyConfig  `yaml:"pagerduty"`
	Slack      SlackConfig      `yaml:"slack"`
	Grafana    GrafanaConfig    `yaml:"grafana"`
	// Alertmanager is where Slack's Silence buttons make silences.
	Alertmanager AlertmanagerConfig `yaml:"alertmanager"`
	Actions      ActionsConfig      `yaml:"actions"`
	StatusPage   StatusPageConfig   `yaml:"status_page"`
	Services     []Service          `yaml:"services"`
}

// AlertmanagerConfig is the Alertmanager whose API v2 the Silence and
// Unsilence buttons use (its external URL, as the alerts' links name it).
// Auth is Alertmanager's http_config: a bearer token or basic auth.
type AlertmanagerConfig struct {
	URL             string          `yaml:"url"`
	BearerTokenFile string          `yaml:"bearer_token_file"` // env AMTRIAGE_ALERTMANAGER_BEARER_TOKEN
	BasicAuth       BasicAuthClient `yaml:"basic_auth"`
	// Timeout bounds each API call. Default 10s.
	Timeout     Duration `yaml:"timeout"`
	BearerToken Secret   `yaml:"-"`
}

// BasicAuthClient is basic auth amtriage sends.
type BasicAuthClient struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"` // env AMTRIAGE_ALERTMANAGER_PASSWORD
	Password     Secret `yaml:"-"`
}

// StatusPageConfig is the public status page, GET /status: off by
// default; without auth when on. It shows the services whose profile says
// public: true, in the runbook's public wording, never labels, reasons,
// diagnosis or internal URLs.
type StatusPageConfig struct {
	Enabled bool `yaml:"enabled"`
	// Title heads the page. Default "Service status".
	Title string `yaml:"title"`
}

// ActionsConfig is what the Slack buttons may do beyond paging.
type ActionsConfig struct {
	Rollback RollbackConfig `yaml:"rollback"`
}

// RollbackConfig opts in to the Roll back button: off by default, and only
// for the Slack user IDs listed (U…/W…). It needs the opt-in Role of
// deploy/kubernetes/rollback-rbac.yaml.
type RollbackConfig struct {
	Enabled      bool     `yaml:"enabled"`
	AllowedUsers []string `yaml:"allowed_users"`
}

// MayRollBack reports whether the Slack user may use Roll back.
func (r RollbackConfig) MayRollBack(slackUser string) bool {
	return r.Enabled && slackUser != "" && slices.Contains(r.AllowedUsers, slackUser)
}

// Secret is a credential read from a *_file key or the environment. It never
// prints itself.
type Secret string

// String hides the value so a secret cannot leak through logs or %v.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// TLSConfig serves the API over HTTPS when both files are set (Alertmanager's
// http_config.tls_config on the other side). Relative paths are relative to
// the config file.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// AuthConfig is how Alertmanager authenticates to POST /webhook.
type AuthConfig struct {
	BearerTokenFile string          `yaml:"bearer_token_file"` // env AMTRIAGE_BEARER_TOKEN
	BasicAuth       BasicAuthConfig `yaml:"basic_auth"`
	BearerToken     Secret          `yaml:"-"`
}

// BasicAuthConfig is optional HTTP basic auth for the webhook.
type BasicAuthConfig struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"` // env AMTRIAGE_BASIC_AUTH_PASSWORD
	Password     Secret `yaml:"-"`
}

// StoreConfig chooses the store: the embedded bbolt one at Path, or
// PostgreSQL when Postgres is set (README, Configuration).
type StoreConfig struct {
	Path string `yaml:"path"` // directory; default ./data; not used with Postgres
	// Postgres, when the key is written at all (`postgres: {}` too),
	// selects PostgreSQL, so that several replicas can share one state.
	Postgres *PostgresConfig `yaml:"postgres"`
}

// PostgresConfig is where the PostgreSQL store's DSN comes from. The DSN
// carries the database password, so it is a secret like the receivers'
// credentials: a file or the environment, never the config text.
type PostgresConfig struct {
	DSNFile string `yaml:"dsn_file"` // env AMTRIAGE_POSTGRES_DSN
	DSN     Secret `yaml:"-"`        // resolved; required
}

// IntakeConfig bounds the webhook intake.
type IntakeConfig struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"` // default 32 MiB
	MaxPending   int   `yaml:"max_pending"`    // requests waiting for a commit before 503; default 4096
	// MaxInflightBytes bounds the bodies being read, decoded or committed at
	// once; past it new webhooks get 503 before their body is read. Default
	// 8 × max_body_bytes.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// MinBodyRate (bytes/s) cuts a webhook body that arrives slower, once
	// its first 10 s have passed, with 408: slow clients cannot hold the
	// in-flight budget or the connections. Default 16384; 0 turns it off.
	MinBodyRate int64 `yaml:"min_body_rate"`
}

// HeartbeatConfig is the dead man's switch: once an Alertmanager's
// always-firing heartbeat alert has been seen, its silence for longer than
// MissingAfter opens a Sev 1 incident for the alerting pipeline.
type HeartbeatConfig struct {
	Alertname    string   `yaml:"alertname"`     // default Watchdog
	MissingAfter Duration `yaml:"missing_after"` // default 15m; 10s..24h
}

// IncidentsConfig tunes the incident lifecycle.
type IncidentsConfig struct {
	// StaleAfter resolves a firing alert not seen in any notification for this
	// long (for resolutions cut by max_alerts). Default 12h; 0 disables.
	StaleAfter Duration `yaml:"stale_after"`
	// Retention keeps resolved incidents (and resolved-occurrence tombstones)
	// this long. Default 168h.
	Retention Duration `yaml:"retention"`
	// Sev1Updates and Sev2Updates pace the runbook's status updates while an
	// incident is open. Defaults 2m and 5m.
	Sev1Updates Duration `yaml:"sev1_updates"`
	Sev2Updates Duration `yaml:"sev2_updates"`
	// Reevaluate is how often an open incident is triaged again with fresh
	// signals, by current severity (keys 1..4). Defaults 1: 2m, 2: 5m,
	// 3: 15m, 4: 30m. 0 turns one severity off.
	Reevaluate map[int]Duration `yaml:"reevaluate"`
	// MonitorFor is how long a recovered incident is watched before it
	// closes (default 1h); alerts of its service firing meanwhile reopen it.
	MonitorFor Duration `yaml:"monitor_for"`
	// VerifyEvery re-checks recovery while verifying (default 30s);
	// VerifyTimeout ends verifying as "resolved, unverified" (default 30m).
	VerifyEvery   Duration `yaml:"verify_every"`
	VerifyTimeout Duration `yaml:"verify_timeout"`
}

// DeliveryConfig tunes the outbox's delivery to each receiver.
type DeliveryConfig struct {
	// Concurrency is how many incidents are delivered at once per receiver
	// (one incident's events always one at a time, in order), so that one
	// hung request does not hold up every other incident. Default 8, 1..256.
	Concurrency int `yaml:"concurrency"`
	// MaxRetryAfter caps the wait a receiver's Retry-After asks for.
	// Default 1h, 1s..24h.
	MaxRetryAfter Duration `yaml:"max_retry_after"`
}

// ThresholdsConfig overrides severity thresholds; nil fields keep the default.
type ThresholdsConfig struct {
	OutageErrorRatio   *float64       `yaml:"outage_error_ratio"`
	MajorErrorRatio    *float64       `yaml:"major_error_ratio"`
	MinorErrorRatio    *float64       `yaml:"minor_error_ratio"`
	ImpactFloor        *float64       `yaml:"impact_floor"`
	MajorLatencyFactor *float64       `yaml:"major_latency_factor"`
	MinorLatencyFactor *float64       `yaml:"minor_latency_factor"`
	HighP99            *Duration      `yaml:"high_p99"`
	Fallback           map[string]int `yaml:"fallback"`         // rule 13: severity label → 1..4
	FallbackDefault    *int           `yaml:"fallback_default"` // rule 13 for other/missing labels
}

// PrometheusConfig is where the profiles' signal queries go.
type PrometheusConfig struct {
	URL     string   `yaml:"url"`
	Timeout Duration `yaml:"timeout"` // per query; default 2s
	// TrendWindow is how far back the error-ratio range query looks to tell
	// whether a service is recovering. Default 10m.
	TrendWindow Duration `yaml:"trend_window"`
	// RecoveringDrop is the share by which the error ratio must have fallen
	// over TrendWindow (from its peak) to count as recovering. Default 0.3.
	RecoveringDrop *float64 `yaml:"recovering_drop"`
}

// Drop is RecoveringDrop, or its default when unset or out of (0, 1).
func (p PrometheusConfig) Drop() float64 {
	if r := p.RecoveringDrop; r != nil && *r > 0 && *r < 1 {
		return *r
	}
	return DefaultRecoveringDrop
}

// ProbesConfig tunes the health probes of the profiles' health_url.
type ProbesConfig struct {
	// Timeout is a whole probe's deadline; past it the service is "hung".
	// Default 2s.
	Timeout Duration `yaml:"timeout"`
}

// KubernetesConfig enables the Kubernetes snapshot and diagnosis.
type KubernetesConfig struct {
	Enabled    bool   `yaml:"enabled"`
	Kubeconfig string `yaml:"kubeconfig"` // empty: in-cluster
	// Namespaces the informers watch. Default: the namespaces the service
	// profiles name; AllNamespaces watches the whole cluster instead.
	Namespaces    []string `yaml:"namespaces"`
	AllNamespaces bool     `yaml:"all_namespaces"`
	// RolloutWindow: a rollout this long before an alert is a suspect and
	// gets the exact rollback command. Default 30m.
	RolloutWindow Duration `yaml:"rollout_window"`
	// EventWindow bounds the Warning events shown. Default 15m.
	EventWindow Duration `yaml:"event_window"`
	// LogTimeout and LogBytes bound the one pod-log read per incident.
	// Defaults 2s and 64 KiB.
	LogTimeout Duration `yaml:"log_timeout"`
	LogBytes   int64    `yaml:"log_bytes"`
}

// PagerDutyConfig is the Events API v2 receiver.
type PagerDutyConfig struct {
	URL            string `yaml:"url"`              // base; the client adds /v2/enqueue
	RoutingKeyFile string `yaml:"routing_key_file"` // env AMTRIAGE_PAGERDUTY_ROUTING_KEY
	// EventsPerMinute caps events per routing key on our side, under
	// PagerDuty's own limit (120/min; more on accounts that have raised it).
	EventsPerMinute int    `yaml:"events_per_minute"`
	RoutingKey      Secret `yaml:"-"`
	// EscalationRoutingKeyFile is the integration the runbook's escalation
	// pages (the senior engineer on call); env
	// AMTRIAGE_PAGERDUTY_ESCALATION_ROUTING_KEY. Without it an escalation
	// is a Slack message only.
	EscalationRoutingKeyFile string `yaml:"escalation_routing_key_file"`
	EscalationRoutingKey     Secret `yaml:"-"`
	// WebhookSecretFile is the signing secret of a PagerDuty webhooks v3
	// subscription pointed at POST /pagerduty/webhook; env
	// AMTRIAGE_PAGERDUTY_WEBHOOK_SECRET. Without it that endpoint is off.
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	WebhookSecret     Secret `yaml:"-"`
}

// SlackConfig is the Slack Web API receiver.
type SlackConfig struct {
	APIURL           string   `yaml:"api_url"`
	TokenFile        string   `yaml:"token_file"` // env AMTRIAGE_SLACK_TOKEN
	Channel          string   `yaml:"channel"`
	IncidentsChannel string   `yaml:"incidents_channel"`
	OncallUsers      []string `yaml:"oncall_users"`
	// BusinessHours is when Sev 4 messages are posted; outside it they wait.
	BusinessHours BusinessHoursConfig `yaml:"business_hours"`
	Token         Secret              `yaml:"-"`
	// SigningSecretFile is the Slack app's signing secret, which verifies
	// POST /slack/interactions (the buttons); env
	// AMTRIAGE_SLACK_SIGNING_SECRET. Without it that endpoint is off.
	SigningSecretFile string `yaml:"signing_secret_file"`
	SigningSecret     Secret `yaml:"-"`
	// AllowedTeams, when set, are the Slack workspace IDs (T…) whose users
	// may click: in a Slack Connect channel another organisation's users
	// see the buttons too. Empty: any user the signed request names.
	AllowedTeams []string `yaml:"allowed_teams"`
}

// BusinessHoursConfig is a weekly window; defaults Mon–Fri 09:00–18:00 UTC.
type BusinessHoursConfig struct {
	Timezone string   `yaml:"timezone"` // IANA name, e.g. Europe/Berlin
	Start    string   `yaml:"start"`    // HH:MM
	End      string   `yaml:"end"`      // HH:MM
	Days     []string `yaml:"days"`     // mon..sun
}

// GrafanaConfig is the Grafana annotations receiver.
type GrafanaConfig struct {
	URL          string `yaml:"url"`
	TokenFile    string `yaml:"token_file"`    // env AMTRIAGE_GRAFANA_TOKEN
	DashboardUID string `yaml:"dashboard_uid"` // optional: tie annotations to one dashboard
	PanelID      int64  `yaml:"panel_id"`      // optional: and one panel of it
	// Render, with a dashboard uid and panels, saves PNGs of those panels
	// with the evidence of a Sev 1–2 incident (Grafana's render API).
	Render GrafanaRender `yaml:"render"`
	Token  Secret        `yaml:"-"`
}

// GrafanaRender names the panels rendered for an incident's evidence:
// GET /render/d-solo/<dashboard_uid>/?panelId=N over the 30 minutes before
// declaration. It needs Grafana's image renderer.
type GrafanaRender struct {
	DashboardUID string   `yaml:"dashboard_uid"`
	PanelIDs     []int64  `yaml:"panel_ids"`
	Width        int      `yaml:"width"`   // pixels; default 1000
	Height       int      `yaml:"height"`  // pixels; default 500
	Timeout      Duration `yaml:"timeout"` // per panel; default 10s
}

// Service is a service profile: which alerts belong to it and how to judge them.
type Service struct {
	Name       string   `yaml:"name"`
	Match      []string `yaml:"match"` // Alertmanager matcher syntax, all must match
	Namespace  string   `yaml:"namespace"`
	Deployment string   `yaml:"deployment"`
	// Selector finds the workload's pods by label (Kubernetes label-selector
	// syntax) when it is not a Deployment.
	Selector  string `yaml:"selector"`
	HealthURL string `yaml:"health_url"`
	// DependsOn names other profiles (a database, a queue) whose health
	// probes are checked for the diagnosis: a dependency down means
	// infrastructure, not this service.
	DependsOn       []string       `yaml:"depends_on"`
	Queries         ServiceQueries `yaml:"queries"`
	LatencyBaseline Duration       `yaml:"latency_baseline"`
	DataLoss        *bool          `yaml:"data_loss"`
	Impact          string         `yaml:"impact"` // "none" marks preventive-only services
	// Public puts the service's incidents on the public status page
	// (status_page.enabled), in the runbook's public wording only.
	Public     bool             `yaml:"public"`
	Thresholds ThresholdsConfig `yaml:"thresholds"`
	Routing    RoutingConfig    `yaml:"routing"`

	Matchers labels.Matchers `yaml:"-"` // parsed Match
}

// RoutingConfig overrides the SPEC's routing table: which severities each
// receiver gets, where Slack posts and which PagerDuty integration pages.
// Unset keys inherit (service → global → the SPEC's defaults).
type RoutingConfig struct {
	PagerDuty               []int  `yaml:"pagerduty"` // severities that page; default [1, 2]
	Slack                   []int  `yaml:"slack"`     // default [1, 2, 3, 4]
	Grafana                 []int  `yaml:"grafana"`   // default [1, 2, 3, 4]
	SlackChannel            string `yaml:"slack_channel"`
	SlackIncidentsChannel   string `yaml:"slack_incidents_channel"`
	PagerDutyRoutingKeyFile string `yaml:"pagerduty_routing_key_file"` // per-service integration
	PagerDutyRoutingKey     Secret `yaml:"-"`
}

// ServiceQueries are the profile's PromQL queries.
type ServiceQueries struct {
	ErrorRatio      string `yaml:"error_ratio"`
	P99Latency      string `yaml:"p99_latency"`
	LatencyBaseline string `yaml:"latency_baseline"`
	// Requests is the service's request rate (per second), for the closure
	// message's impact: rate × error ratio integrated over the incident.
	Requests string `yaml:"requests"`
}

// Duration is a time.Duration written in Prometheus/Go syntax ("250ms", "1d").
type Duration time.Duration
