package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Format hides the value for every verb (%s, %v, %x, %q, %#v, ...): with only
// String, a verb such as %x on the underlying string could still leak it.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalText hides the value from JSON (check-config output, API dumps).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue hides the value from log/slog, whatever the handler.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Environment variables that supply a secret when its *_file key is not set.
const (
	EnvBearerToken       = "AMTRIAGE_BEARER_TOKEN"
	EnvBasicAuthPassword = "AMTRIAGE_BASIC_AUTH_PASSWORD"
	EnvPagerDutyKey      = "AMTRIAGE_PAGERDUTY_ROUTING_KEY"
	EnvPagerDutyEscKey   = "AMTRIAGE_PAGERDUTY_ESCALATION_ROUTING_KEY"
	EnvPagerDutyWebhook  = "AMTRIAGE_PAGERDUTY_WEBHOOK_SECRET"
	EnvSlackToken        = "AMTRIAGE_SLACK_TOKEN"
	EnvSlackSigning      = "AMTRIAGE_SLACK_SIGNING_SECRET"
	EnvGrafanaToken      = "AMTRIAGE_GRAFANA_TOKEN"
	EnvPostgresDSN       = "AMTRIAGE_POSTGRES_DSN"
	EnvAlertmanagerToken = "AMTRIAGE_ALERTMANAGER_BEARER_TOKEN"
	EnvAlertmanagerPass  = "AMTRIAGE_ALERTMANAGER_PASSWORD"
)

// secretRef ties a *_file key to its environment variable and destination.
type secretRef struct {
	key  string // "auth.bearer_token_file"
	file string
	env  string
	dst  *Secret
}

func secretRefs(c *Config) []secretRef {
	refs := []secretRef{
		{"auth.bearer_token_file", c.Auth.BearerTokenFile, EnvBearerToken, &c.Auth.BearerToken},
		{"auth.basic_auth.password_file", c.Auth.BasicAuth.PasswordFile, EnvBasicAuthPassword, &c.Auth.BasicAuth.Password},
		{"pagerduty.routing_key_file", c.PagerDuty.RoutingKeyFile, EnvPagerDutyKey, &c.PagerDuty.RoutingKey},
		{"pagerduty.escalation_routing_key_file", c.PagerDuty.EscalationRoutingKeyFile, EnvPagerDutyEscKey, &c.PagerDuty.EscalationRoutingKey},
		{"pagerduty.webhook_secret_file", c.PagerDuty.WebhookSecretFile, EnvPagerDutyWebhook, &c.PagerDuty.WebhookSecret},
		{"slack.token_file", c.Slack.TokenFile, EnvSlackToken, &c.Slack.Token},
		{"slack.signing_secret_file", c.Slack.SigningSecretFile, EnvSlackSigning, &c.Slack.SigningSecret},
		{"grafana.token_file", c.Grafana.TokenFile, EnvGrafanaToken, &c.Grafana.Token},
		{"alertmanager.bearer_token_file", c.Alertmanager.BearerTokenFile, EnvAlertmanagerToken, &c.Alertmanager.BearerToken},
		{"alertmanager.basic_auth.password_file", c.Alertmanager.BasicAuth.PasswordFile, EnvAlertmanagerPass, &c.Alertmanager.BasicAuth.Password},
	}
	if p := c.Store.Postgres; p != nil { // the variable alone selects nothing
		refs = append(refs, secretRef{"store.postgres.dsn_file", p.DSNFile, EnvPostgresDSN, &p.DSN})
	}
	for i := range c.Services {
		r := &c.Services[i].Routing
		if r.PagerDutyRoutingKeyFile != "" { // per-service keys come only from files
			refs = append(refs, secretRef{fmt.Sprintf("services[%d].routing.pagerduty_routing_key_file", i), r.PagerDutyRoutingKeyFile, "", &r.PagerDutyRoutingKey})
		}
	}
	return refs
}

// inlineSecrets maps, per section type, the key an operator might write the
// secret under to the environment variable that should carry it instead. The
// SPEC forbids secrets in the config text, so these keys get a specific
// error, not a generic "unknown key".
var inlineSecrets = map[string]map[string]string{
	"rules.AuthConfig":         {"bearer_token": EnvBearerToken},
	"rules.BasicAuthConfig":    {"password": EnvBasicAuthPassword},
	"rules.PagerDutyConfig":    {"routing_key": EnvPagerDutyKey, "escalation_routing_key": EnvPagerDutyEscKey, "webhook_secret": EnvPagerDutyWebhook},
	"rules.SlackConfig":        {"token": EnvSlackToken, "signing_secret": EnvSlackSigning},
	"rules.GrafanaConfig":      {"token": EnvGrafanaToken},
	"rules.PostgresConfig":     {"dsn": EnvPostgresDSN},
	"rules.AlertmanagerConfig": {"bearer_token": EnvAlertmanagerToken},
	"rules.BasicAuthClient":    {"password": EnvAlertmanagerPass},
}

// ResolveSecrets fills the Secret fields: from each *_file key when set
// (relative paths are taken from baseDir, the config file's directory), else
// from the key's environment variable through getenv (os.Getenv when nil).
// A file wins over the environment so that an explicit config is never
// silently overridden. store.postgres without a DSN from either is an error,
// as is basic auth without a password. Errors name the key and the file,
// never its content.
func ResolveSecrets(cfg *Config, baseDir string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	var errs Errors
	for _, r := range secretRefs(cfg) {
		if r.file == "" {
			*r.dst = Secret(strings.TrimRight(getenv(r.env), " \t\r\n"))
			continue
		}
		path := r.file
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		v, err := readSecretFile(path)
		if err != nil {
			errs = append(errs, &KeyError{Key: r.key, Err: err})
			continue
		}
		*r.dst = v
	}
	ba := &cfg.Auth.BasicAuth
	if ba.Username != "" && ba.Password == "" && ba.PasswordFile == "" {
		errs = append(errs, &KeyError{Key: "auth.basic_auth", Err: fmt.Errorf(
			"username %q needs a password; set password_file or $%s", ba.Username, EnvBasicAuthPassword)})
	}
	if p := cfg.Store.Postgres; p != nil && p.DSNFile == "" && p.DSN == "" {
		errs = append(errs, &KeyError{Key: "store.postgres", Err: errNoDSN})
	}
	receiverDefaults(cfg)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// errNoDSN is store.postgres without a DSN; load leaves it out when the
// section itself is already reported (an inline dsn, a string for it).
var errNoDSN = fmt.Errorf("needs a DSN: set store.postgres.dsn_file or $%s", EnvPostgresDSN)

// errEmptySecret is returned for a secret file with nothing but whitespace:
// an empty bearer token would let any request through a constant-time
// compare against "".
var errEmptySecret = errors.New("is empty")

// readSecretFile reads one secret and trims the trailing newline editors and
// `echo` add. Its errors carry the path (from os) but never the content.
func readSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	v := strings.TrimRight(string(b), " \t\r\n")
	if v == "" {
		return "", fmt.Errorf("secret file %s %w", path, errEmptySecret)
	}
	return Secret(v), nil
}
