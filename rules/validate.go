package rules

import (
	"cmp"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	k8slabels "k8s.io/apimachinery/pkg/labels"

	"github.com/amtriage/amtriage/severity"
)

// validator collects semantic problems with their key paths and lines.
type validator struct {
	t        *tree
	suppress []string // keys yaml.v3 could not decode; already reported
	errs     Errors
}

func (v *validator) fail(key string, err error) {
	for _, s := range v.suppress {
		if related(key, s) {
			return
		}
	}
	v.errs = append(v.errs, &KeyError{Line: v.t.line(key), Key: key, Err: err})
}

func (v *validator) failf(key, format string, args ...any) {
	v.fail(key, fmt.Errorf(format, args...))
}

// related reports whether one key path contains the other, so that a value
// yaml.v3 could not decode does not also fail validation as "missing".
func related(a, b string) bool {
	if a == b || a == "" || b == "" {
		return true
	}
	within := func(x, y string) bool {
		return strings.HasPrefix(x, y) && (x[len(y)] == '.' || x[len(y)] == '[')
	}
	return len(a) > len(b) && within(a, b) || len(b) > len(a) && within(b, a)
}

func (v *validator) config(c *Config) {
	if c.Listen != "" {
		v.listen("listen", c.Listen)
	}
	v.url("prometheus.url", c.Prometheus.URL)
	v.url("pagerduty.url", c.PagerDuty.URL)
	v.url("slack.api_url", c.Slack.APIURL)
	v.url("grafana.url", c.Grafana.URL)
	v.url("external_url", c.ExternalURL)
	v.url("alertmanager.url", c.Alertmanager.URL)
	v.actions(c)
	v.grafanaRender(c)

	if body := cmp.Or(c.Intake.MaxBodyBytes, DefaultMaxBodyBytes); c.Intake.MaxInflightBytes != 0 && c.Intake.MaxInflightBytes < body {
		v.failf("intake.max_inflight_bytes", "must be at least intake.max_body_bytes (%d), got %d", body, c.Intake.MaxInflightBytes)
	}
	v.limits(c)
	v.signals(c)
	if strings.TrimSpace(c.Heartbeat.Alertname) != c.Heartbeat.Alertname {
		v.failf("heartbeat.alertname", "must not start or end with spaces, got %q", c.Heartbeat.Alertname)
	}
	v.routing("routing", c.Routing)
	for i := range c.Services {
		v.routing(fmt.Sprintf("services[%d].routing", i), c.Services[i].Routing)
	}
	if c.Grafana.PanelID > 0 && c.Grafana.DashboardUID == "" {
		v.failf("grafana.panel_id", "needs grafana.dashboard_uid, got %d", c.Grafana.PanelID)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.failf("tls", "cert_file and key_file must be set together")
	}
	if c.Auth.BasicAuth.PasswordFile != "" && c.Auth.BasicAuth.Username == "" {
		v.failf("auth.basic_auth.username", "required when auth.basic_auth.password_file is set")
	}
	v.businessHours(c.Slack.BusinessHours)

	v.thresholds("severity", c.Severity, severity.DefaultThresholds())
	global := severity.DefaultThresholds()
	c.Severity.apply(&global)

	seen := map[string]int{}
	for i := range c.Services {
		v.service(i, &c.Services[i], global, seen)
	}
	for i, s := range c.Services {
		for j, dep := range s.DependsOn {
			key := fmt.Sprintf("services[%d].depends_on[%d]", i, j)
			switch first, ok := seen[dep]; {
			case !ok:
				v.failf(key, "no service profile named %q", dep)
			case first == i:
				v.failf(key, "a service cannot depend on itself")
			case c.Services[first].HealthURL == "":
				v.failf(key, "service %q has no health_url to probe", dep)
			}
		}
	}
}

// businessHours checks what notify.ParseBusinessHours will accept when the
// Slack receiver is built, so that serve cannot refuse what passed here.
func (v *validator) businessHours(bh BusinessHoursConfig) {
	const at = "slack.business_hours"
	if bh.Timezone != "" {
		if _, err := time.LoadLocation(bh.Timezone); err != nil {
			v.failf(at+".timezone", "unknown time zone %q", bh.Timezone)
		}
	}
	start, serr := time.Parse("15:04", bh.Start)
	end, eerr := time.Parse("15:04", bh.End)
	if bh.Start != "" && serr != nil {
		v.failf(at+".start", "want HH:MM, got %q", bh.Start)
	}
	if bh.End != "" && eerr != nil {
		v.failf(at+".end", "want HH:MM, got %q", bh.End)
	}
	if bh.Start != "" && bh.End != "" && serr == nil && eerr == nil && !end.After(start) {
		v.failf(at+".end", "%s is not after start %s", bh.End, bh.Start)
	}
	for i, d := range bh.Days {
		if !slices.Contains([]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, strings.ToLower(strings.TrimSpace(d))[:min(3, len(strings.TrimSpace(d)))]) {
			v.failf(fmt.Sprintf("%s.days[%d]", at, i), "want mon..sun, got %q", d)
		}
	}
}

// signals checks the keys of the measured-signal sources.
func (v *validator) signals(c *Config) {
	if r := c.Prometheus.RecoveringDrop; r != nil && !(*r > 0 && *r < 1) {
		v.failf("prometheus.recovering_drop", "must be a share between 0 and 1 exclusive, got %v", *r)
	}
	if len(c.Kubernetes.Namespaces) > 0 && c.Kubernetes.AllNamespaces {
		v.failf("kubernetes.namespaces", "set together with kubernetes.all_namespaces: choose one")
	}
	for i, ns := range c.Kubernetes.Namespaces {
		if strings.TrimSpace(ns) == "" {
			v.failf(fmt.Sprintf("kubernetes.namespaces[%d]", i), "empty namespace name")
		}
	}
	if c.Kubernetes.Kubeconfig != "" && !c.Kubernetes.Enabled {
		v.failf("kubernetes.kubeconfig", "set, but kubernetes.enabled is false: the snapshot would never run")
	}
	for sev := range c.Incidents.Reevaluate {
		if sev < 1 || sev > 4 {
			v.failf(fmt.Sprintf("incidents.reevaluate.%d", sev), "severity must be 1..4, got %d", sev)
		}
	}
}

func (v *validator) service(i int, s *Service, global severity.Thresholds, seen map[string]int) {
	at := "services[" + strconv.Itoa(i) + "]"
	switch first, dup := seen[s.Name]; {
	case strings.TrimSpace(s.Name) == "":
		v.failf(at+".name", "a service needs a non-empty name")
	case dup:
		v.failf(at+".name", "duplicate service name %q (first at services[%d], line %d)",
			s.Name, first, v.t.line(fmt.Sprintf("services[%d]", first)))
	default:
		seen[s.Name] = i
	}

	if len(s.Match) == 0 {
		// Without a matcher a profile would claim every alert.
		name := s.Name
		if name == "" {
			name = "api"
		}
		v.failf(at+".match", "a service needs at least one matcher, e.g. match: ['service=\"%s\"']", name)
	}
	s.Matchers = s.Matchers[:0]
	for j, m := range s.Match {
		key := fmt.Sprintf("%s.match[%d]", at, j)
		ms, err := labels.ParseMatchers(m)
		switch {
		case err != nil:
			v.fail(key, fmt.Errorf("invalid matcher: %w", err))
		case len(ms) == 0:
			v.failf(key, "empty matcher")
		default:
			s.Matchers = append(s.Matchers, ms...)
		}
	}

	v.url(at+".health_url", s.HealthURL)
	v.inRange(at+".latency_baseline", latencyBaselineLimit, dur(s.LatencyBaseline))
	if s.Selector != "" {
		if s.Deployment != "" {
			v.failf(at+".selector", "set both selector and deployment: name the workload one way")
		} else if _, err := k8slabels.Parse(s.Selector); err != nil {
			v.failf(at+".selector", "invalid label selector: %v", err)
		}
	}
	switch strings.ToLower(s.Impact) {
	case "", "none":
		s.Impact = strings.ToLower(s.Impact)
	default:
		// Only "none" means anything (rule 7); anything else is a typo that
		// would silently page for a preventive alert.
		v.failf(at+".impact", `must be "none" or left out, got %q`, s.Impact)
	}
	v.thresholds(at+".thresholds", s.Thresholds, global)
}

// listen checks host:port with a numeric port; the host may be empty (all
// interfaces).
func (v *validator) listen(key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.failf(key, "must be host:port (e.g. 127.0.0.1:9095), got %q", addr)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.failf(key, "port must be a number 0..65535, got %q", port)
	}
}

// url checks an endpoint is absolute http(s). Credentials in a URL are
// secrets in the config text, which the SPEC forbids; the message shows the
// URL redacted for that reason.
func (v *validator) url(key, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		v.failf(key, "must be an absolute http(s) URL: cannot parse it")
		return
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		v.failf(key, "credentials are not accepted in URLs (%s); use the *_file keys", u.Redacted())
		return
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.failf(key, "must be an absolute http(s) URL, got %q", u.Redacted())
	}
}

// ratioKeys and latencyKeys are the thresholds that must stay ordered; a
// wrong order silently makes decision-tree rules unreachable.
var ratioKeys = []string{"impact_floor", "minor_error_ratio", "major_error_ratio", "outage_error_ratio"}

// thresholds checks one override section (path "severity" or
// "services[i].thresholds") on its own and merged over base. An ordering
// problem is reported in the section that set one of the two values.
func (v *validator) thresholds(path string, tc ThresholdsConfig, base severity.Thresholds) {
	set := tc.ratios()
	for i, k := range ratioKeys {
		if p := set[i]; p != nil && !(*p > 0 && *p <= 1) {
			v.failf(path+"."+k, "must be a ratio in (0, 1], got %v", *p)
		}
	}
	for _, f := range []struct {
		key string
		p   *float64
	}{{"minor_latency_factor", tc.MinorLatencyFactor}, {"major_latency_factor", tc.MajorLatencyFactor}} {
		if f.p != nil && !(*f.p > 1 && *f.p <= maxLatencyFactor) {
			v.failf(path+"."+f.key, "must be a factor > 1 and at most %d, got %v", maxLatencyFactor, *f.p)
		}
	}
	if tc.HighP99 != nil {
		v.inRange(path+".high_p99", highP99Limit, dur(*tc.HighP99))
	}
	for label, lvl := range tc.Fallback {
		key := path + ".fallback." + label
		if strings.TrimSpace(label) == "" {
			v.failf(path+".fallback", "a severity label must not be empty")
			continue
		}
		if !severity.Level(lvl).Valid() {
			v.failf(key, "must be a severity 1..4, got %d", lvl)
		}
	}
	if tc.FallbackDefault != nil && !severity.Level(*tc.FallbackDefault).Valid() {
		v.failf(path+".fallback_default", "must be a severity 1..4, got %d", *tc.FallbackDefault)
	}

	eff := base
	tc.apply(&eff)
	effRatios := []float64{eff.ImpactFloor, eff.MinorErrorRatio, eff.MajorErrorRatio, eff.OutageErrorRatio}
	for i := 0; i+1 < len(ratioKeys); i++ {
		if effRatios[i] > effRatios[i+1] && (set[i] != nil || set[i+1] != nil) {
			key := path + "." + ratioKeys[i]
			if set[i] == nil {
				key = path + "." + ratioKeys[i+1]
			}
			v.fail(key, orderError(ratioKeys[i], effRatios[i], ratioKeys[i+1], effRatios[i+1], strings.Join(ratioKeys, " ≤ ")))
		}
	}
	if eff.MinorLatencyFactor > eff.MajorLatencyFactor && (tc.MinorLatencyFactor != nil || tc.MajorLatencyFactor != nil) {
		key := path + ".minor_latency_factor"
		if tc.MinorLatencyFactor == nil {
			key = path + ".major_latency_factor"
		}
		v.fail(key, orderError("minor_latency_factor", eff.MinorLatencyFactor, "major_latency_factor", eff.MajorLatencyFactor,
			"minor_latency_factor ≤ major_latency_factor"))
	}
}

func orderError(lo string, loV float64, hi string, hiV float64, order string) error {
	return fmt.Errorf("%s %v exceeds %s %v; thresholds must satisfy %s", lo, loV, hi, hiV, order)
}

func (v *validator) routing(path string, r RoutingConfig) {
	if path == "routing" && r.PagerDutyRoutingKeyFile != "" {
		v.failf("routing.pagerduty_routing_key_file", "per service only; the default key is pagerduty.routing_key_file")
	}
	for _, sev := range r.PagerDuty {
		if sev == 3 || sev == 4 {
			v.failf(path+".pagerduty", "only Sev 1 and 2 page; got %d", sev)
		}
	}
	for key, sevs := range map[string][]int{"pagerduty": r.PagerDuty, "slack": r.Slack, "grafana": r.Grafana} {
		for _, sev := range sevs {
			if sev < 1 || sev > 4 {
				v.failf(path+"."+key, "severities are 1..4, got %d", sev)
			}
		}
	}
}

// MaxRenderPanels bounds grafana.render.panel_ids: each PNG is kept up to
// 256 KiB, and an incident's evidence up to 2 MiB.
const MaxRenderPanels = 4

func (v *validator) grafanaRender(c *Config) {
	r := c.Grafana.Render
	if len(r.PanelIDs) == 0 && r.DashboardUID == "" {
		return
	}
	if r.DashboardUID == "" {
		v.failf("grafana.render.dashboard_uid", "required when grafana.render.panel_ids is set")
	}
	if len(r.PanelIDs) == 0 {
		v.failf("grafana.render.panel_ids", "required when grafana.render.dashboard_uid is set")
	}
	if len(r.PanelIDs) > MaxRenderPanels {
		v.failf("grafana.render.panel_ids", "at most %d panels, got %d", MaxRenderPanels, len(r.PanelIDs))
	}
	for i, id := range r.PanelIDs {
		if id <= 0 || id > math.MaxInt32 {
			v.failf(fmt.Sprintf("grafana.render.panel_ids[%d]", i), "must be a panel id (1..%d), got %d", math.MaxInt32, id)
		}
	}
	if c.Grafana.URL == "" {
		v.failf("grafana.render", "needs grafana.url (and its token)")
	}
}

// actions checks the Alertmanager the Silence buttons use and who may roll back.
func (v *validator) actions(c *Config) {
	am := c.Alertmanager
	if am.BearerToken != "" && am.BasicAuth.Password != "" {
		v.failf("alertmanager", "bearer_token_file and basic_auth are exclusive, as in Alertmanager's http_config")
	}
	if (am.BasicAuth.Username == "") != (am.BasicAuth.Password == "" && am.BasicAuth.PasswordFile == "") {
		v.failf("alertmanager.basic_auth", "username and password_file must be set together")
	}
	if am.URL == "" && (am.BearerTokenFile != "" || am.BasicAuth.Username != "") {
		v.failf("alertmanager.url", "is required when alertmanager auth is set")
	}
	if am.Timeout < 0 {
		v.failf("alertmanager.timeout", "must not be negative, got %s", am.Timeout)
	}
	for i, team := range c.Slack.AllowedTeams {
		if len(team) < 2 || team[0] != 'T' || strings.ToUpper(team) != team {
			v.failf(fmt.Sprintf("slack.allowed_teams[%d]", i), "must be a Slack workspace ID (T…), got %q", team)
		}
	}
	rb := c.Actions.Rollback
	for i, u := range rb.AllowedUsers {
		if !slackUserID(u) {
			v.failf(fmt.Sprintf("actions.rollback.allowed_users[%d]", i), "must be a Slack user ID (U… or W…, as in the user's profile), got %q", u)
		}
	}
	if rb.Enabled && len(rb.AllowedUsers) == 0 {
		v.failf("actions.rollback.allowed_users", "must list who may roll back when actions.rollback.enabled is true")
	}
	if rb.Enabled && !c.Kubernetes.Enabled {
		v.failf("actions.rollback.enabled", "needs kubernetes.enabled: the rollback is done through the Kubernetes API")
	}
}

// slackUserID: U or W followed by upper-case letters and digits.
func slackUserID(s string) bool {
	if len(s) < 2 || len(s) > 32 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, c := range s[1:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
