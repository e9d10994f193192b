package pgstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/internal/testutil"
)

// secret is a password no message may contain, in whole or in part.
const secret = "Zq7-Distinct1ve-Pw"

// secretParts are pieces of secret that a partial redaction would leave.
var secretParts = []string{secret, "Zq7", "Distinct1ve", "ve-Pw"}

func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, p := range secretParts {
		if strings.Contains(text, p) {
			t.Errorf("%s contains (part of) the password %q: %s", what, p, text)
		}
	}
}

func TestDescribeDSNNamesWhereNotThePassword(t *testing.T) {
	for _, tt := range []struct {
		dsn, want string
	}{
		{"postgres://amtriage:" + secret + "@db.example:6543/alerts?sslmode=disable",
			"host=db.example port=6543 database=alerts user=amtriage"},
		{"host=db.example port=6543 dbname=alerts user=amtriage password=" + secret + " sslmode=disable",
			"host=db.example port=6543 database=alerts user=amtriage"},
		{"postgres://amtriage:" + secret + "@a:1,b:2/alerts?sslmode=disable",
			"host=a,b port=1,2 database=alerts user=amtriage"},
		// Unparseable by pgx (bad port): still where, never the password.
		{"host=db.example port=x dbname=alerts user=amtriage password = " + secret,
			"host=db.example port=x database=alerts user=amtriage"},
		{"postgres://amtriage:" + secret + "@db.example:x/alerts",
			"host=db.example port=x database=alerts user=amtriage"},
		{"%%% " + secret, "unparseable DSN"},
	} {
		got := DescribeDSN(tt.dsn)
		if got != tt.want {
			t.Errorf("DescribeDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
		assertNoSecret(t, "DescribeDSN", got)
	}
}

// pgx masks what it recognises as a password when it quotes a DSN it cannot
// parse; these are DSNs it does not fully mask.
func TestConnectWithAnUnparseableDSNNeverShowsThePassword(t *testing.T) {
	for _, dsn := range []string{
		"host=db.example password = " + secret + " port=x",
		`host=db.example password='Zq7\' Distinct1ve-Pw' port=x`,
		"host=db.example password='" + secret + "' port=x",
		"postgres://amtriage:" + secret + "@db.example:x/alerts",
		"postgres://amtriage:" + secret + "@db.example/alerts?sslmode=bogus",
		"postgres://amtriage@db.example/alerts?password=" + secret + "&connect_timeout=x",
		"postgres://amtriage:Zq7%zzDistinct1ve-Pw@db.example/alerts",
		"postgres://amtriage:" + secret + "@[::1/alerts",
	} {
		_, err := Connect(context.Background(), dsn)
		if err == nil {
			t.Errorf("Connect(%q) succeeded", dsn)
			continue
		}
		assertNoSecret(t, "error", err.Error())
		if !strings.Contains(err.Error(), "db.example") && !strings.Contains(err.Error(), "::1") {
			t.Errorf("error does not name the host: %v", err)
		}
	}
}

func TestConnectErrorsNameTheServerNeverThePassword(t *testing.T) {
	srv := pgtest.Shared(t)
	good := pgtest.PasswordDSN(srv.NewDatabase(t))
	wrongPassword := strings.Replace(good, pgtest.Password, secret, 1)
	nothingThere := pgtest.WithAddr(wrongPassword, testutil.FreeAddr(t))
	noSuchDB := strings.Replace(strings.Replace(good, pgtest.Password, secret, 1), "/t", "/nosuchdb_t", 1)
	for _, tt := range []struct {
		name, dsn, want string
	}{
		{"wrong password", wrongPassword, "password authentication failed"},
		{"nothing listening", nothingThere, "connect"},
		{"no such database", noSuchDB, "nosuchdb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := Connect(ctx, tt.dsn)
			if err == nil {
				p.Close()
				t.Fatal("Connect succeeded")
			}
			msg := err.Error()
			assertNoSecret(t, "error", msg)
			cfg, _ := pgxpool.ParseConfig(tt.dsn)
			for _, w := range []string{tt.want, "host=127.0.0.1", "user=" + pgtest.PasswordUser,
				"database=" + cfg.ConnConfig.Database} {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
		})
	}
}

func TestConnectRefusesAnEmptyDSN(t *testing.T) {
	// pgx would read PGHOST and friends and try a local socket instead.
	if _, err := Connect(context.Background(), " "); err == nil || !strings.Contains(err.Error(), "no DSN") {
		t.Errorf("Connect(\"\") = %v, want a no-DSN error", err)
	}
}

func TestConnectNamesTheApplication(t *testing.T) {
	dsn := pgtest.PasswordDSN(freshDB(t))
	for _, tt := range []struct {
		dsnParams string
		opts      []ConnectOption
		want      string
	}{
		{"", nil, "amtriage"},
		{"", []ConnectOption{WithApplicationSuffix("lease")}, "amtriage-lease"},
		// The DSN's own application_name does not hide us from operators.
		{"&application_name=other", nil, "amtriage"},
	} {
		p := pool(t, dsn+tt.dsnParams, tt.opts...)
		var got string
		if err := p.QueryRow(context.Background(), "SHOW application_name").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("DSN params %q, options %d: application_name = %q, want %q", tt.dsnParams, len(tt.opts), got, tt.want)
		}
	}
}
