package rules

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStorePostgres covers how store.postgres is selected and where its DSN
// comes from: the file (relative to the config file) wins over the
// environment, and without either the error names both.
func TestStorePostgres(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "dsn", "postgres://amtriage:pw@db:5432/amtriage\n")
	writeFile(t, dir, "blank", " \n\n")
	abs := writeFile(t, dir, "abs-dsn", "host=db user=amtriage")
	tests := []struct {
		name    string
		config  string
		env     string // $AMTRIAGE_POSTGRES_DSN
		want    string // the resolved DSN; "" with selected false: bbolt
		off     bool   // store.postgres is not selected
		wantErr string
	}{
		{name: "absent: bbolt, even with the variable set", config: "listen: 127.0.0.1:1\n", env: "postgres://x", off: true},
		{name: "dsn_file relative to the config file, newline trimmed", config: "store:\n  postgres:\n    dsn_file: dsn\n",
			want: "postgres://amtriage:pw@db:5432/amtriage"},
		{name: "dsn_file absolute", config: "store: {postgres: {dsn_file: " + abs + "}}\n", want: "host=db user=amtriage"},
		{name: "the file wins over the variable", config: "store: {postgres: {dsn_file: dsn}}\n", env: "postgres://env",
			want: "postgres://amtriage:pw@db:5432/amtriage"},
		{name: "empty mapping and the variable", config: "store:\n  postgres: {}\n", env: "postgres://env\n", want: "postgres://env"},
		{name: "null value selects it too", config: "store:\n  postgres:\n", env: "postgres://env", want: "postgres://env"},
		{name: "neither file nor variable", config: "listen: 127.0.0.1:1\nstore:\n  postgres: {}\n",
			wantErr: "line 3: store.postgres: needs a DSN: set store.postgres.dsn_file or $AMTRIAGE_POSTGRES_DSN"},
		{name: "a blank variable is none", config: "store:\n  postgres: {}\n", env: " \n",
			wantErr: "line 2: store.postgres: needs a DSN: set store.postgres.dsn_file or $AMTRIAGE_POSTGRES_DSN"},
		{name: "empty file", config: "store:\n  postgres:\n    dsn_file: blank\n", env: "postgres://env",
			wantErr: "line 3: store.postgres.dsn_file: secret file " + filepath.Join(dir, "blank") + " is empty"},
		{name: "missing file", config: "store:\n  postgres:\n    dsn_file: nope\n",
			wantErr: "line 3: store.postgres.dsn_file: reading secret file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{name: "inline dsn", config: "store:\n  postgres:\n    dsn: postgres://x\n",
			wantErr: "line 3: store.postgres.dsn: secrets are not accepted inline; use dsn_file or $AMTRIAGE_POSTGRES_DSN"},
		{name: "typo", config: "store:\n  postgres:\n    dsn_fil: dsn\n", env: "postgres://env",
			wantErr: `line 3: unknown key "dsn_fil" in store.postgres (did you mean "dsn_file"?)`},
		{name: "a string instead of a mapping", config: "store:\n  postgres: postgres://x\n",
			wantErr: "line 2: store.postgres: want a mapping, got a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == EnvPostgresDSN {
					return tt.env
				}
				return ""
			}
			cfg, err := load([]byte(tt.config), dir, getenv)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.off {
				if cfg.Store.Postgres != nil {
					t.Fatalf("store.postgres selected: %+v", *cfg.Store.Postgres)
				}
				return
			}
			if cfg.Store.Postgres == nil {
				t.Fatal("store.postgres not selected")
			}
			if got := string(cfg.Store.Postgres.DSN); got != tt.want {
				t.Errorf("DSN = %q, want %q", got, tt.want)
			}
		})
	}
}

// A DSN carries the database password: no error, log or dump of the
// configuration may show it, however it is written.
func TestPostgresDSNNeverShown(t *testing.T) {
	const password = "PGPASS-4e1d77"
	dsn := "postgres://amtriage:" + password + "@db.example:5432/amtriage?sslmode=require"
	dir := t.TempDir()
	writeFile(t, dir, "dsn", dsn+"\n")
	unreadable := writeFile(t, dir, "unreadable", dsn)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == EnvPostgresDSN {
			return dsn
		}
		return ""
	}
	bad := map[string]string{
		"inline":                "store:\n  postgres:\n    dsn: " + dsn + "\n",
		"as the section":        "store:\n  postgres: " + dsn + "\n",
		"as a list":             "store:\n  postgres: [" + dsn + "]\n",
		"as store.path's list":  "store:\n  path: [" + dsn + "]\n",
		"file read, other bad":  "listen: nowhere\nstore:\n  postgres: {dsn_file: dsn}\n",
		"env read, other bad":   "listen: nowhere\nstore:\n  postgres: {}\n",
		"unreadable file":       "listen: nowhere\nstore:\n  postgres: {dsn_file: unreadable}\n", // root reads it anyway
		"an unknown key beside": "store:\n  postgres: {dsn_file: dsn}\n  bogus: 1\n",
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := load([]byte(in), dir, env)
			if err == nil {
				t.Fatal("loaded")
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("the error shows the password:\n%v", err)
			}
		})
	}
	// A good one: the value is there for the store and hidden from every
	// way a configuration is printed.
	cfg, err := load([]byte("store:\n  postgres: {dsn_file: dsn}\n"), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Store.Postgres.DSN) != dsn {
		t.Fatalf("DSN = %q", string(cfg.Store.Postgres.DSN))
	}
	for name, out := range printed(t, cfg) {
		if strings.Contains(out, password) {
			t.Errorf("%s of the configuration shows the password: %s", name, out)
		}
	}
}

// printed is every way a configuration gets printed: fmt verbs, JSON (the
// check-config and API style) and both slog handlers.
func printed(t *testing.T, c *Config) map[string]string {
	t.Helper()
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("cfg", "config", c, "store", c.Store, "postgres", c.Store.Postgres)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "config", c, "store", c.Store, "postgres", c.Store.Postgres)
	out := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", *c),
		"%#v":  fmt.Sprintf("%#v", *c),
		"json": string(js),
		"slog": logged.String(),
	}
	if p := c.Store.Postgres; p != nil {
		out["%+v of store.postgres"] = fmt.Sprintf("%+v", *p)
		out["%#v of store.postgres"] = fmt.Sprintf("%#v", *p)
	}
	return out
}
