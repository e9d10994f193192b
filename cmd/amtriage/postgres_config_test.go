package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/amtriage/amtriage/rules"
)

// check-config on store.postgres: the DSN is found or the error says where
// to put it, and the password it carries is never printed.
func TestCheckConfigPostgres(t *testing.T) {
	const password = "PGPASS-c0ffee42"
	dsn := "postgres://amtriage:" + password + "@db.example:5432/amtriage"
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dsn"), dsn+"\n")
	writeFile(t, filepath.Join(dir, "empty"), "\n")
	notADir := writeFile(t, filepath.Join(dir, "a-file"), "x")
	tests := []struct {
		name    string
		config  string
		env     string // $AMTRIAGE_POSTGRES_DSN
		code    int
		wantOut string
	}{
		{"dsn_file", "store:\n  postgres:\n    dsn_file: dsn\n", "", 0, ": ok"},
		{"the variable", "store:\n  postgres: {}\n", dsn, 0, ": ok"},
		// bbolt would refuse it; with PostgreSQL it is not used.
		{"store.path is not used", "store:\n  path: " + notADir + "\n  postgres: {dsn_file: dsn}\n", "", 0, ": ok"},
		{"neither", "store:\n  postgres: {}\n", "", 1, "store.postgres: needs a DSN: set store.postgres.dsn_file or $AMTRIAGE_POSTGRES_DSN"},
		{"empty file", "store:\n  postgres: {dsn_file: empty}\n", dsn, 1, "secret file " + filepath.Join(dir, "empty") + " is empty"},
		{"other errors", "listen: nowhere\nstore:\n  postgres: {dsn_file: dsn}\n", dsn, 1, "line 1: listen"},
		{"inline", "store:\n  postgres: {dsn: " + dsn + "}\n", "", 1, "secrets are not accepted inline"},
		// What serve could not connect with is refused here, password hidden.
		{"bad DSN", "store:\n  postgres: {}\n", "postgres://amtriage:" + password + "@db.example:notaport/amtriage", 1, "store.postgres.dsn"},
		{"bad keyword DSN", "store:\n  postgres: {}\n", "host=db.example password=" + password + " sslmode=sometimes", 1, "store.postgres.dsn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(rules.EnvPostgresDSN, tt.env)
			cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), tt.config)
			code, stdout, stderr := runCLI(t, "", "check-config", cfg)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.wantOut) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tt.code, tt.wantOut, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, password) {
				t.Errorf("check-config printed the password:\n%s%s", stdout, stderr)
			}
		})
	}
}

// The Kubernetes manifests' ConfigMaps pass loadConfig, the validation serve
// runs, once the files their Secrets provide are in place (stand-ins here).
func TestManifestConfigMapsLoad(t *testing.T) {
	for _, k := range []string{rules.EnvBearerToken, rules.EnvBasicAuthPassword, rules.EnvPagerDutyKey,
		rules.EnvPagerDutyEscKey, rules.EnvSlackToken, rules.EnvGrafanaToken, rules.EnvPostgresDSN} {
		t.Setenv(k, "")
	}
	for _, tt := range []struct {
		manifest string
		postgres bool
	}{
		{"../../deploy/kubernetes/amtriage.yaml", false},
		{"../../deploy/kubernetes/ha/amtriage.yaml", true},
	} {
		t.Run(filepath.Base(filepath.Dir(tt.manifest)), func(t *testing.T) {
			text := configMapText(t, tt.manifest)
			dir := t.TempDir()
			for _, p := range regexp.MustCompile(`/etc/amtriage/[A-Za-z0-9._/-]+`).FindAllString(text, -1) {
				local := filepath.Join(dir, strings.TrimPrefix(p, "/etc/amtriage/"))
				if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
					t.Fatal(err)
				}
				fake := "R0123456789abcdef0123456789abcde" // a PagerDuty routing key's shape
				if filepath.Base(p) == "dsn" {
					fake = "postgres://amtriage:not-a-password@postgres.db.svc:5432/amtriage"
				}
				writeFile(t, local, fake+"\n")
			}
			path := writeFile(t, filepath.Join(dir, "amtriage.yml"), strings.ReplaceAll(text, "/etc/amtriage/", dir+"/"))
			cfg, err := loadConfig(path)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if got := cfg.Store.Postgres != nil; got != tt.postgres {
				t.Errorf("store.postgres selected: %v, want %v", got, tt.postgres)
			}
		})
	}
}

// configMapText is the amtriage.yml of the manifest's ConfigMap.
func configMapText(t *testing.T, manifest string) string {
	t.Helper()
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var obj struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", manifest, err)
		}
		if obj.Kind == "ConfigMap" && obj.Data["amtriage.yml"] != "" {
			return obj.Data["amtriage.yml"]
		}
	}
	t.Fatalf("%s has no ConfigMap with an amtriage.yml", manifest)
	return ""
}
