package rules

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// escalation.after: 5m unless set, 0 turns it off, bounded to 1s..1d.
func TestEscalationAfter(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
		err  string
	}{
		{"listen: 127.0.0.1:9095\n", 5 * time.Minute, ""},
		{"escalation:\n  after: 0\n", 0, ""},
		{"escalation:\n  after: 90s\n", 90 * time.Second, ""},
		{"escalation:\n  after: 100ms\n", 0, "escalation.after: must be 0 (off) or between 1s and 1d"},
		{"escalation:\n  after: 2d\n", 0, "escalation.after: must be 0 (off) or between 1s and 1d"},
		{"escalation:\n  afterr: 5m\n", 0, `unknown key "afterr"`},
	} {
		c, err := Parse([]byte(tc.yaml))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case time.Duration(c.Escalation.After) != tc.want:
			t.Errorf("%q: after %v, want %v", tc.yaml, time.Duration(c.Escalation.After), tc.want)
		}
	}
}

// The escalation routing key is a secret like the routing key: from its
// file, else from $AMTRIAGE_PAGERDUTY_ESCALATION_ROUTING_KEY, never inline.
func TestEscalationRoutingKey(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "esc", "escKEY123\n")
	c := mustParse(t, "pagerduty:\n  routing_key_file: esc\n  escalation_routing_key_file: esc\n")
	if err := ResolveSecrets(c, dir, noEnv); err != nil {
		t.Fatal(err)
	}
	if c.PagerDuty.EscalationRoutingKey != "escKEY123" {
		t.Errorf("from the file: %q", string(c.PagerDuty.EscalationRoutingKey))
	}
	c = mustParse(t, "listen: 127.0.0.1:9095\n")
	env := map[string]string{EnvPagerDutyEscKey: "envESC", EnvPagerDutyKey: "envPD"}
	if err := ResolveSecrets(c, dir, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.PagerDuty.EscalationRoutingKey != "envESC" || EnvPagerDutyEscKey != "AMTRIAGE_PAGERDUTY_ESCALATION_ROUTING_KEY" {
		t.Errorf("from $%s: %q", EnvPagerDutyEscKey, string(c.PagerDuty.EscalationRoutingKey))
	}
	_, err := Parse([]byte("pagerduty:\n  escalation_routing_key: abc\n"))
	if err == nil || !strings.Contains(err.Error(), EnvPagerDutyEscKey) || strings.Contains(err.Error(), "abc") {
		t.Errorf("inline escalation key: %v, want a refusal naming $%s", err, EnvPagerDutyEscKey)
	}
	var errs Errors
	if err := ResolveSecrets(mustParse(t, "pagerduty:\n  escalation_routing_key_file: missing\n"), dir, noEnv); !errors.As(err, &errs) ||
		!strings.Contains(err.Error(), "pagerduty.escalation_routing_key_file: reading secret file") {
		t.Errorf("missing file: %v", err)
	}
}
