package rules

import (
	"cmp"
	_ "embed"
	"fmt"
	"strings"
	"time"
)

// Defaults for keys left out of the file. They make a file with only
// `listen` (or no file at all) a working loopback daemon with the embedded
// store and the log notifier.
const (
	DefaultListen         = "127.0.0.1:9095"
	DefaultStorePath      = "./data"
	DefaultMaxBodyBytes   = 32 << 20 // enough for a 10,000-alert storm
	DefaultMaxPending     = 4096
	DefaultMinBodyRate    = 16 << 10 // bytes/s
	DefaultStaleAfter     = 12 * time.Hour
	DefaultHeartbeatName  = "Watchdog"
	DefaultMissingAfter   = 15 * time.Minute
	DefaultRetention      = 168 * time.Hour
	DefaultEscalateAfter  = 5 * time.Minute
	DefaultMonitorFor     = time.Hour
	DefaultVerifyEvery    = 30 * time.Second
	DefaultVerifyTimeout  = 30 * time.Minute
	DefaultPromTimeout    = 2 * time.Second
	DefaultTrendWindow    = 10 * time.Minute
	DefaultRecoveringDrop = 0.3
	DefaultProbeTimeout   = 2 * time.Second
	DefaultRolloutWindow  = 30 * time.Minute
	DefaultEventWindow    = 15 * time.Minute
	DefaultLogTimeout     = 2 * time.Second
	DefaultLogBytes       = 64 << 10
	DefaultPagerDutyURL   = "https://events.pagerduty.com"
	DefaultSlackAPIURL    = "https://slack.com/api/"

	DefaultDeliveryConcurrency = 32
	MaxDeliveryConcurrency     = 256
	DefaultMaxRetryAfter       = time.Hour
)

// grafana.render's defaults: a panel's PNG size and render deadline.
const (
	DefaultRenderWidth   = 1000
	DefaultRenderHeight  = 500
	DefaultRenderTimeout = 10 * time.Second
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default configuration text, for `amtriage
// check-config` style output and documentation.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default is the embedded default configuration, parsed and defaulted: what
// `amtriage serve` runs without --config. Secrets are not resolved; call
// ResolveSecrets to pick them up from the environment. Each call returns a
// fresh copy the caller may modify.
func Default() *Config {
	c, err := Parse(defaultYAML)
	if err != nil {
		// The file is embedded and covered by tests; failing here is a build bug.
		panic(fmt.Sprintf("rules: embedded default.yaml is invalid: %v", err))
	}
	return c
}

// applyDefaults fills keys left out of the file. set tells an explicit 0
// (`stale_after: 0` disables staleness) from an absent key.
func applyDefaults(c *Config, set func(key string) bool) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Store.Path == "" {
		c.Store.Path = DefaultStorePath
	}
	if c.Intake.MaxBodyBytes == 0 {
		c.Intake.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Intake.MaxPending == 0 {
		c.Intake.MaxPending = DefaultMaxPending
	}
	if bh := &c.Slack.BusinessHours; bh.Start == "" && bh.End == "" {
		bh.Start, bh.End = "09:00", "18:00"
	}
	if c.Incidents.Sev1Updates == 0 {
		c.Incidents.Sev1Updates = Duration(2 * time.Minute)
	}
	if c.Incidents.Sev2Updates == 0 {
		c.Incidents.Sev2Updates = Duration(5 * time.Minute)
	}
	if c.Intake.MaxInflightBytes == 0 {
		c.Intake.MaxInflightBytes = 8 * c.Intake.MaxBodyBytes
	}
	if c.Intake.MinBodyRate == 0 && !set("intake.min_body_rate") {
		c.Intake.MinBodyRate = DefaultMinBodyRate
	}
	if c.Incidents.StaleAfter == 0 && !set("incidents.stale_after") {
		c.Incidents.StaleAfter = Duration(DefaultStaleAfter)
	}
	c.Delivery.Concurrency = cmp.Or(c.Delivery.Concurrency, DefaultDeliveryConcurrency)
	c.Delivery.MaxRetryAfter = cmp.Or(c.Delivery.MaxRetryAfter, Duration(DefaultMaxRetryAfter))
	if c.Escalation.After == 0 && !set("escalation.after") {
		c.Escalation.After = Duration(DefaultEscalateAfter)
	}
	if c.Incidents.Retention == 0 {
		c.Incidents.Retention = Duration(DefaultRetention)
	}
	c.Incidents.MonitorFor = cmp.Or(c.Incidents.MonitorFor, Duration(DefaultMonitorFor))
	c.Incidents.VerifyEvery = cmp.Or(c.Incidents.VerifyEvery, Duration(DefaultVerifyEvery))
	c.Incidents.VerifyTimeout = cmp.Or(c.Incidents.VerifyTimeout, Duration(DefaultVerifyTimeout))
	if c.Heartbeat.Alertname == "" {
		c.Heartbeat.Alertname = DefaultHeartbeatName
	}
	if c.Heartbeat.MissingAfter == 0 {
		c.Heartbeat.MissingAfter = Duration(DefaultMissingAfter)
	}
	if c.Prometheus.Timeout == 0 {
		c.Prometheus.Timeout = Duration(DefaultPromTimeout)
	}
	if c.Prometheus.TrendWindow == 0 {
		c.Prometheus.TrendWindow = Duration(DefaultTrendWindow)
	}
	if c.Prometheus.RecoveringDrop == nil {
		d := DefaultRecoveringDrop
		c.Prometheus.RecoveringDrop = &d
	}
	if c.Probes.Timeout == 0 {
		c.Probes.Timeout = Duration(DefaultProbeTimeout)
	}
	k := &c.Kubernetes
	k.RolloutWindow = cmp.Or(k.RolloutWindow, Duration(DefaultRolloutWindow))
	k.EventWindow = cmp.Or(k.EventWindow, Duration(DefaultEventWindow))
	k.LogTimeout = cmp.Or(k.LogTimeout, Duration(DefaultLogTimeout))
	k.LogBytes = cmp.Or(k.LogBytes, DefaultLogBytes)
	if c.Incidents.Reevaluate == nil {
		c.Incidents.Reevaluate = map[int]Duration{}
	}
	for sev, d := range map[int]time.Duration{1: 2 * time.Minute, 2: 5 * time.Minute, 3: 15 * time.Minute, 4: 30 * time.Minute} {
		if _, set := c.Incidents.Reevaluate[sev]; !set {
			c.Incidents.Reevaluate[sev] = Duration(d)
		}
	}
	// Receivers append paths to these bases; normalising here keeps every
	// client free of slash handling. Slack's Web API base ends in "/".
	c.PagerDuty.URL = strings.TrimRight(c.PagerDuty.URL, "/")
	c.Grafana.URL = strings.TrimRight(c.Grafana.URL, "/")
	c.Alertmanager.URL = strings.TrimRight(c.Alertmanager.URL, "/")
	c.ExternalURL = strings.TrimRight(c.ExternalURL, "/")
	r := &c.Grafana.Render
	r.Width = cmp.Or(r.Width, DefaultRenderWidth)
	r.Height = cmp.Or(r.Height, DefaultRenderHeight)
	r.Timeout = cmp.Or(r.Timeout, Duration(DefaultRenderTimeout))
	if c.Slack.APIURL != "" && !strings.HasSuffix(c.Slack.APIURL, "/") {
		c.Slack.APIURL += "/"
	}
	receiverDefaults(c)
}

// receiverDefaults points a receiver at its public endpoint once it has a
// credential (from a file or the environment), so the file need not repeat it.
func receiverDefaults(c *Config) {
	if c.PagerDuty.URL == "" && (c.PagerDuty.RoutingKeyFile != "" || c.PagerDuty.RoutingKey != "" ||
		c.PagerDuty.EscalationRoutingKeyFile != "" || c.PagerDuty.EscalationRoutingKey != "") {
		c.PagerDuty.URL = DefaultPagerDutyURL
	}
	if c.Slack.APIURL == "" && (c.Slack.TokenFile != "" || c.Slack.Token != "") {
		c.Slack.APIURL = DefaultSlackAPIURL
	}
}
