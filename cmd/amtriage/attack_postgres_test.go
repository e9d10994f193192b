package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtriage/amtriage/rules"
)

// Found by running the binary: check-config calls a DSN that serve refuses
// at once ("invalid DSN ... invalid port") ok, so a config that passed CI
// crash-loops every replica. check-config should say what serve will say.
func TestAttackCheckConfigRefusesTheDSNServeRefuses(t *testing.T) {
	const password = "PGPASS-s3cr3t-SYN"
	t.Setenv(rules.EnvPostgresDSN, "")
	dir := t.TempDir()
	for _, tt := range []struct{ name, dsn string }{
		{"bad port", "postgres://amt:" + password + "@db.example:55x432/amt"},
		{"bad escape", "postgres://amt:" + password + "@db.example:5432/amt?sslmode=%zz"},
		{"unknown sslmode", "host=db.example user=amt password=" + password + " sslmode=sometimes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "dsn"), tt.dsn+"\n")
			cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  postgres: {dsn_file: dsn}\n")
			code, stdout, stderr := runCLI(t, "", "check-config", cfg)
			if code == 0 {
				t.Errorf("check-config exit 0 (%q) for a DSN serve refuses to start with", strings.TrimSpace(stdout))
			}
			if strings.Contains(stdout+stderr, password) {
				t.Errorf("check-config printed the password:\n%s%s", stdout, stderr)
			}
		})
	}
}
