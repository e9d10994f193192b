// Package pgstore keeps amtriage's state in PostgreSQL, so that several
// replicas can share it with one leader at a time: the connection pool, the
// versioned schema and the leader lease with its fencing epoch (README.md,
// "Replicas on PostgreSQL").
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ApplicationName is the application_name of every connection Connect
// opens (with an optional suffix): pg_stat_activity shows amtriage's
// backends under it.
const ApplicationName = "amtriage"

// DefaultIdleInTransactionTimeout is idle_in_transaction_session_timeout
// on every pool unless the DSN or an option sets it.
const DefaultIdleInTransactionTimeout = 2 * time.Second

// defaultConnectTimeout bounds one connection attempt when the DSN sets no
// connect_timeout: a host that drops packets must not hang the start.
const defaultConnectTimeout = 5 * time.Second

// ConnectOption changes the pool Connect opens.
type ConnectOption func(*pgxpool.Config)

// WithApplicationSuffix names the connections "amtriage-<suffix>", e.g. one
// pool per replica or per role (intake, lease).
func WithApplicationSuffix(suffix string) ConnectOption {
	return func(c *pgxpool.Config) {
		if suffix != "" {
			c.ConnConfig.RuntimeParams["application_name"] = ApplicationName + "-" + suffix
		}
	}
}

// WithMaxConns sets the pool's size (pgx's default: max(4, CPUs)).
func WithMaxConns(n int32) ConnectOption {
	return func(c *pgxpool.Config) {
		if n > 0 {
			c.MaxConns = n
		}
	}
}

// WithIdleInTransactionTimeout has the database end a session that stays
// idle inside a transaction for d (idle_in_transaction_session_timeout),
// unless the DSN sets it. A replica partitioned away mid-transaction leaves
// its backend holding the lease row (Fence's lock) until TCP gives up,
// hours later, and no standby could take over; a daemon's transactions are
// never idle for more than a round trip.
func WithIdleInTransactionTimeout(d time.Duration) ConnectOption {
	return func(c *pgxpool.Config) {
		const param = "idle_in_transaction_session_timeout"
		if _, set := c.ConnConfig.RuntimeParams[param]; !set && d > 0 {
			c.ConnConfig.RuntimeParams[param] = strconv.FormatInt(d.Milliseconds(), 10)
		}
	}
}

// Connect opens a pool on dsn and checks that the database answers. Its
// errors name the DSN's host, port, database and user (DescribeDSN), never
// its password: the DSN is a secret.
func Connect(ctx context.Context, dsn string, opts ...ConnectOption) (*pgxpool.Pool, error) {
	pool, err := NewPool(dsn, opts...)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: connect: %w", DescribeDSN(dsn), ScrubError(dsn, err))
	}
	return pool, nil
}

// NewPool is Connect without the check: connections are made when first
// needed, so a daemon can start (and say it is not ready) while the
// database is down.
func NewPool(dsn string, opts ...ConnectOption) (*pgxpool.Pool, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errNoDSN
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN (%s): %w", DescribeDSN(dsn), ScrubError(dsn, err))
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = ApplicationName
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	for _, o := range opts {
		o(cfg)
	}
	// Every pool: a fenced transaction share-locks the lease row, and one
	// left open by a client cut off midway must not hold a takeover up
	// until TCP gives up (hours). Below the lease's TTL - margin.
	WithIdleInTransactionTimeout(DefaultIdleInTransactionTimeout)(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", DescribeDSN(dsn), ScrubError(dsn, err))
	}
	return pool, nil
}

// DescribeDSN says where dsn points, for messages: "host=H port=P
// database=D user=U" (every host of a multi-host DSN). It never includes
// the password, nor the DSN itself.
func DescribeDSN(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return describeUnparsed(dsn)
	}
	hosts := []string{cfg.Host + ":" + strconv.Itoa(int(cfg.Port))}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host+":"+strconv.Itoa(int(f.Port)))
	}
	h, p := splitHostPorts(dedupe(hosts))
	return fmt.Sprintf("host=%s port=%s database=%s user=%s", h, p, cfg.Database, cfg.User)
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func splitHostPorts(hps []string) (hosts, ports string) {
	var hs, ps []string
	for _, hp := range hps {
		i := strings.LastIndexByte(hp, ':')
		hs, ps = append(hs, hp[:i]), append(ps, hp[i+1:])
	}
	return strings.Join(hs, ","), strings.Join(ps, ",")
}

// describeUnparsed is DescribeDSN for a DSN pgx cannot parse: what a URL
// parse still tells, else nothing but that it is unparseable.
func describeUnparsed(dsn string) string {
	if rest, ok := cutScheme(dsn); ok {
		// By hand: url.Parse refuses what pgx refused (a bad port, a bad
		// escape), and quotes the whole URL when it does.
		authority, path := rest, ""
		afterAt := strings.LastIndexByte(rest, '@') + 1 // 0 without userinfo
		if i := strings.IndexAny(rest[afterAt:], "/?#"); i >= 0 {
			authority, path = rest[:afterAt+i], rest[afterAt+i:]
		}
		user, hostport := "", authority
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			user, _, _ = strings.Cut(authority[:at], ":")
			hostport = authority[at+1:]
		}
		host, port := hostport, ""
		bracketed := strings.HasPrefix(hostport, "[")
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 && (!bracketed || strings.Contains(hostport[:i], "]")) {
			host, port = hostport[:i], hostport[i+1:]
		}
		db, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "?")
		if u, err := url.PathUnescape(user); err == nil {
			user = u
		}
		return fmt.Sprintf("host=%s port=%s database=%s user=%s", host, port, db, user)
	}
	// keyword/value: the plain words of the four keywords, if any.
	kv := map[string]string{}
	for _, m := range kvWord.FindAllStringSubmatch(dsn, -1) {
		kv[m[1]] = m[2]
	}
	if len(kv) == 0 {
		return "unparseable DSN"
	}
	return fmt.Sprintf("host=%s port=%s database=%s user=%s", kv["host"], kv["port"], kv["dbname"], kv["user"])
}

func cutScheme(dsn string) (string, bool) {
	if rest, ok := strings.CutPrefix(dsn, "postgres://"); ok {
		return rest, true
	}
	return strings.CutPrefix(dsn, "postgresql://")
}

var kvWord = regexp.MustCompile(`(?:^|\s)(host|port|dbname|user)=([^\s']*)`)

// ScrubError returns err with every password dsn holds masked in its text
// (pgx's own redaction of a DSN it cannot parse is best effort, and an
// url.Error quotes the whole URL). errors.Is and errors.As still see err.
func ScrubError(dsn string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	scrubbed := scrub(msg, dsn)
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// pgx quotes the DSN with what it recognised as passwords masked;
		// it misses some ("password = x", escaped quotes), leaving a part of
		// the password beside the mask. Our message names the DSN's parts
		// anyway, so the quote goes.
		scrubbed = scrub(dropQuotedDSN(msg), dsn)
	}
	if scrubbed == msg {
		return err
	}
	return &scrubbedError{msg: scrubbed, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

const mask = "xxxxx"

// dropQuotedDSN removes the "`<dsn>`" a pgconn.ParseConfigError's text
// quotes after "cannot parse ".
func dropQuotedDSN(msg string) string {
	const open = "cannot parse `"
	i := strings.Index(msg, open)
	if i < 0 {
		return msg
	}
	j := strings.LastIndex(msg, "`: ")
	if j < i+len(open) {
		j = strings.LastIndexByte(msg, '`')
	}
	if j < i+len(open) {
		return msg[:i] + "cannot parse the DSN"
	}
	return msg[:i] + "cannot parse the DSN" + msg[j+1:]
}

var kvPassword = regexp.MustCompile(`(?i)\b(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]*)`)

// scrub masks in msg the DSN itself and each password it holds, raw and
// percent-decoded, longest first (one may contain another).
func scrub(msg, dsn string) string {
	secrets := passwords(dsn)
	if dsn != "" {
		secrets = append(secrets, dsn)
	}
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, mask)
		}
	}
	return msg
}

// passwords extracts every candidate password from dsn, best effort, so
// that even a DSN no parser accepts is masked: the URL userinfo's password
// (after the first ':' up to the last '@' before the path), password= and
// sslpassword= values in a query or keyword/value string.
func passwords(dsn string) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := url.PathUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
		if d, err := url.QueryUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
	}
	if rest, isURL := cutScheme(dsn); isURL {
		authority := rest
		if i := strings.IndexAny(authority, "/?#"); i >= 0 && strings.LastIndexByte(authority, '@') < i {
			authority = authority[:i]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
				add(pw)
			}
		}
		if _, q, ok := strings.Cut(rest, "?"); ok {
			for _, kv := range strings.Split(q, "&") {
				k, v, _ := strings.Cut(kv, "=")
				if dk, err := url.QueryUnescape(k); err == nil {
					k = dk
				}
				if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
					add(v)
				}
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(dsn, -1) {
		v := m[1]
		add(v)
		if len(v) >= 2 && v[0] == '\'' {
			inner := v[1 : len(v)-1]
			add(inner)
			add(strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(inner))
		}
	}
	return out
}

// errNoDSN refuses an empty DSN, for which pgx would fall back to libpq's
// environment defaults and a local socket.
var errNoDSN = errors.New("postgres: no DSN configured")

// CheckDSN parses dsn as a connection would, without connecting: what
// check-config reports. Its error never holds the password.
func CheckDSN(dsn string) error {
	if strings.TrimSpace(dsn) == "" {
		return errNoDSN
	}
	if _, err := pgxpool.ParseConfig(dsn); err != nil {
		return fmt.Errorf("invalid DSN (%s): %w", DescribeDSN(dsn), ScrubError(dsn, err))
	}
	return nil
}
