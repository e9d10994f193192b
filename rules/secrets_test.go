package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes a fixture under dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParse(t *testing.T, in string) *Config {
	t.Helper()
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestResolveSecrets(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", "from-file\n\n")
	writeFile(t, dir, "pw", "pa ss \r\n")
	env := map[string]string{
		EnvBearerToken:   "from-env",
		EnvPagerDutyKey:  "pd-from-env\n",
		EnvSlackToken:    "xoxb-env",
		EnvGrafanaToken:  "",
		"UNRELATED_NAME": "x",
	}
	getenv := func(k string) string { return env[k] }

	c := mustParse(t, "auth:\n  bearer_token_file: token\n  basic_auth:\n    username: am\n    password_file: "+filepath.Join(dir, "pw")+"\n")
	if err := ResolveSecrets(c, dir, getenv); err != nil {
		t.Fatal(err)
	}
	for _, ck := range []struct {
		name string
		got  Secret
		want string
	}{
		{"bearer token: file wins over env, trailing newlines trimmed", c.Auth.BearerToken, "from-file"},
		{"password: absolute path, inner space kept", c.Auth.BasicAuth.Password, "pa ss"},
		{"routing key from env, trimmed", c.PagerDuty.RoutingKey, "pd-from-env"},
		{"slack token from env", c.Slack.Token, "xoxb-env"},
		{"grafana token unset", c.Grafana.Token, ""},
	} {
		if string(ck.got) != ck.want {
			t.Errorf("%s: got %q, want %q", ck.name, string(ck.got), ck.want)
		}
	}
	// A credential from the environment enables its receiver's public endpoint.
	if c.PagerDuty.URL != DefaultPagerDutyURL || c.Slack.APIURL != DefaultSlackAPIURL {
		t.Errorf("endpoints: pagerduty %q slack %q", c.PagerDuty.URL, c.Slack.APIURL)
	}
}

func TestResolveSecretsErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "empty", " \n\t\n")
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, `auth:
  bearer_token_file: missing
  basic_auth:
    username: am
pagerduty:
  routing_key_file: empty
grafana:
  url: http://g
  token_file: adir
`)
	err := ResolveSecrets(c, dir, noEnv)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v (%T), want Errors", err, err)
	}
	want := []string{
		"auth.bearer_token_file: reading secret file: open " + filepath.Join(dir, "missing") + ": no such file or directory",
		"pagerduty.routing_key_file: secret file " + filepath.Join(dir, "empty") + " is empty",
		"grafana.token_file: reading secret file: read " + filepath.Join(dir, "adir") + ": is a directory",
		`auth.basic_auth: username "am" needs a password; set password_file or $AMTRIAGE_BASIC_AUTH_PASSWORD`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Error("the os error should stay inspectable with errors.Is")
	}
}

// TestSecretsNeverInErrors writes a distinctive secret everywhere a careless
// implementation might echo it and checks no error message contains it.
func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "TOPSECRET-7f3a9c"
	dir := t.TempDir()
	writeFile(t, dir, "token", secret+"\n")
	unreadable := writeFile(t, dir, "unreadable", secret)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"inline secrets": "auth:\n  bearer_token: " + secret + "\n  basic_auth:\n    password: " + secret +
			"\npagerduty:\n  routing_key: " + secret + "\nslack:\n  token: " + secret + "\ngrafana:\n  token: " + secret + "\n",
		"secret as a section":      "auth: " + secret + "\n",
		"secret as a list item":    "pagerduty: [" + secret + "]\n",
		"secret in a url":          "prometheus:\n  url: http://user:" + secret + "@prom:9090\n",
		"secret as a key":          secret + ": x\n",
		"readable file, other bad": "auth:\n  bearer_token_file: token\n  basic_auth:\n    username: u\n    password_file: nope\n",
		"unreadable file":          "auth:\n  bearer_token_file: unreadable\n  basic_auth:\n    username: u\n",
		"password without user":    "auth:\n  basic_auth:\n    password_file: token\nlisten: bad\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, dir, "config.yaml", in)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			// The key itself is named in the "secret as a key" case; that is
			// the operator's key, not a value, and yaml.v3 reports it.
			if name != "secret as a key" && strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the secret:\n%v", err)
			}
		})
	}
	t.Run("env", func(t *testing.T) {
		c := mustParse(t, "auth:\n  basic_auth:\n    username: u\n")
		err := ResolveSecrets(c, dir, func(k string) string {
			if k == EnvBasicAuthPassword {
				return ""
			}
			return secret
		})
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestSecretFormatting(t *testing.T) {
	const secret = "TOPSECRET-7f3a9c"
	s := Secret(secret)
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%X", "%d", "%#v", "%+v", "%10s"} {
		if got := fmt.Sprintf(verb, s); strings.Contains(got, secret) || strings.Contains(got, fmt.Sprintf("%x", secret)) {
			t.Errorf("Sprintf(%q) = %q leaks the secret", verb, got)
		}
	}
	if s.String() != "<secret>" || Secret("").String() != "" {
		t.Errorf("String() = %q / %q", s.String(), Secret("").String())
	}

	c := mustParse(t, "listen: 127.0.0.1:1\n")
	c.Auth.BearerToken = s
	c.Auth.BasicAuth.Password = s
	c.PagerDuty.RoutingKey = s
	c.Slack.Token = s
	c.Grafana.Token = s
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("cfg", "config", c, "token", c.Auth.BearerToken)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "config", c, "token", c.Auth.BearerToken)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", *c),
		"%#v":  fmt.Sprintf("%#v", *c),
		"json": string(js),
		"slog": logged.String(),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("%s of a Config leaks the secret: %s", name, out)
		}
	}
	// The value itself stays usable by the receivers.
	if string(c.Slack.Token) != secret {
		t.Error("string(Secret) must give the value")
	}
}
