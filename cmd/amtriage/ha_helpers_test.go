package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	fakegrafana "github.com/amtriage/amtriage/internal/fakes/grafana"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/store/pgstore"
)

// haEnv is replicas of amtriage on one PostgreSQL with the PagerDuty, Slack
// and Grafana fakes as receivers. Each replica reaches each fake through a
// tap of its own, so every delivery is recorded with its time and replica.
type haEnv struct {
	dir     string
	pg      *pgtest.Server
	dsn     string
	slack   *fakeslack.Server
	pd      *fakepd.Server
	grafana *fakegrafana.Server
	log     *deliveryLog
}

func newHAEnv(t testing.TB, pgOpts ...pgtest.Option) *haEnv {
	t.Helper()
	pg := pgtest.Start(t, pgOpts...)
	e := &haEnv{dir: t.TempDir(), pg: pg, dsn: pg.NewDatabase(t),
		slack: fakeslack.New(slackToken), pd: fakepd.New(), grafana: fakegrafana.New(grafToken), log: &deliveryLog{}}
	t.Cleanup(e.slack.Close)
	t.Cleanup(e.pd.Close)
	t.Cleanup(e.grafana.Close)
	writeFileTB(t, filepath.Join(e.dir, "grafana-token"), grafToken+"\n")
	writeFileTB(t, filepath.Join(e.dir, "slack-token"), slackToken+"\n")
	writeFileTB(t, filepath.Join(e.dir, "pd-key"), pdKey+"\n")
	return e
}

func writeFileTB(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replica is one amtriage serve process of an haEnv; start and restart it
// on the same address and configuration.
type replica struct {
	name string
	cfg  string
	addr string
	taps map[string]*tap // by receiver: pagerduty, slack, grafana
	*daemon
}

// newReplica configures a replica reaching PostgreSQL at dsn (the env's,
// or through a proxy) without starting it.
func (e *haEnv) newReplica(t testing.TB, name, dsn string) *replica {
	t.Helper()
	r := &replica{name: name, addr: freeAddr(t), taps: map[string]*tap{}}
	for recv, target := range map[string]string{"pagerduty": e.pd.URL, "slack": e.slack.URL, "grafana": e.grafana.URL} {
		r.taps[recv] = newTap(t, name, recv, target, e.log)
	}
	writeFileTB(t, filepath.Join(e.dir, "dsn-"+name), dsn+"\n")
	r.cfg = writeFileTB(t, filepath.Join(e.dir, name+".yml"), `
store:
  postgres:
    dsn_file: dsn-`+name+`
pagerduty:
  url: `+r.taps["pagerduty"].URL()+`
  routing_key_file: pd-key
grafana:
  url: `+r.taps["grafana"].URL()+`
  token_file: grafana-token
slack:
  api_url: `+r.taps["slack"].URL()+`
  token_file: slack-token
  channel: "#alerts"
  incidents_channel: "#incidents"
  oncall_users: [U0123456]
  business_hours: {timezone: UTC, start: "00:00", end: "23:59", days: [mon, tue, wed, thu, fri, sat, sun]}
`)
	return r
}

// start runs the replica (again) and waits until it is ready: it reaches
// the database, leading or not.
func (r *replica) start(t testing.TB) *replica {
	t.Helper()
	r.daemon = startDaemon(t, r.cfg, r.addr)
	return r
}

// url is the replica's address, fixed across restarts: senders use it
// while start replaces the process (the embedded daemon's would race).
func (r *replica) url(path string) string { return "http://" + r.addr + path }

// leading asks /readyz whether the replica leads.
func (r *replica) leading() bool {
	m, err := httpGetJSON(r.url("/readyz"))
	return err == nil && m["leader"] == true
}

// waitLeader waits until exactly one of rs leads, and returns it.
func waitLeader(t testing.TB, timeout time.Duration, rs ...*replica) *replica {
	t.Helper()
	var lead *replica
	ok := waitUntil(timeout, func() bool {
		lead = nil
		for _, r := range rs {
			if r.leading() {
				if lead != nil {
					return false
				}
				lead = r
			}
		}
		return lead != nil
	})
	if !ok {
		t.Fatalf("no single leader after %v", timeout)
	}
	return lead
}

// logTime is the time of the first line of the replica's log (this run)
// whose msg contains msg, if any.
func (r *replica) logTime(msg string) (time.Time, bool) {
	for _, line := range strings.Split(r.stderr.String(), "\n") {
		var m struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && strings.Contains(m.Msg, msg) {
			return m.Time, true
		}
	}
	return time.Time{}, false
}

// delivery is one request a replica made to a receiver's fake.
type delivery struct {
	Replica, Receiver, Method, Path string
	At                              time.Time // when it reached the tap
	DedupKey, Action                string    // PagerDuty's, parsed from the body
	Refused                         bool      // answered 503 by the tap, never forwarded
}

// deliveryLog keeps every delivery of an haEnv, in arrival order.
type deliveryLog struct {
	mu  sync.Mutex
	all []delivery
}

func (l *deliveryLog) add(d delivery) {
	l.mu.Lock()
	l.all = append(l.all, d)
	l.mu.Unlock()
}

// by returns the deliveries of replica ("" for all).
func (l *deliveryLog) by(replica string) []delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []delivery
	for _, d := range l.all {
		if replica == "" || d.Replica == replica {
			out = append(out, d)
		}
	}
	return out
}

// tap forwards one replica's requests to one fake and records them. It can
// delay each request (so a kill lands mid-delivery) or refuse them all
// with 503 (so the replica holds a delivery it keeps retrying).
type tap struct {
	replica, receiver string
	srv               *httptest.Server
	delay             atomic.Int64 // time.Duration
	refuse            atomic.Bool
}

func newTap(t testing.TB, replica, receiver, target string, log *deliveryLog) *tap {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{replica: replica, receiver: receiver}
	proxy := quietProxy(u)
	tp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		d := delivery{Replica: replica, Receiver: receiver, Method: req.Method, Path: req.URL.Path, At: time.Now(), Refused: tp.refuse.Load()}
		if receiver == "pagerduty" {
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
			var ev struct {
				DedupKey string `json:"dedup_key"`
				Action   string `json:"event_action"`
			}
			_ = json.Unmarshal(body, &ev)
			d.DedupKey, d.Action = ev.DedupKey, ev.Action
		}
		log.add(d)
		if d.Refused {
			http.Error(w, `{"status":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		if delay := time.Duration(tp.delay.Load()); delay > 0 {
			time.Sleep(delay)
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(tp.srv.Close)
	return tp
}

func (tp *tap) URL() string { return tp.srv.URL }

// webhookTap stands between Alertmanager and a replica and records which
// alerts the replica acknowledged (answered 200 for).
type webhookTap struct {
	srv   *httptest.Server
	mu    sync.Mutex
	acked map[string]bool // alert identity (service/alertname) → acknowledged
	posts atomic.Int64    // notifications acknowledged
}

func newWebhookTap(t testing.TB, replicaAddr string) *webhookTap {
	t.Helper()
	wt := &webhookTap{acked: map[string]bool{}}
	proxy := quietProxy(&url.URL{Scheme: "http", Host: replicaAddr})
	wt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		proxy.ServeHTTP(rec, req)
		if rec.status != http.StatusOK {
			return
		}
		var msg struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if json.Unmarshal(body, &msg) == nil {
			wt.mu.Lock()
			for _, a := range msg.Alerts {
				wt.acked[alertID(a.Labels["service"], a.Labels["alertname"])] = true
			}
			wt.mu.Unlock()
			wt.posts.Add(1)
		}
	}))
	t.Cleanup(wt.srv.Close)
	return wt
}

func (wt *webhookTap) URL() string { return wt.srv.URL + "/webhook" }

func (wt *webhookTap) ackedAlerts() map[string]bool {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	out := make(map[string]bool, len(wt.acked))
	for k := range wt.acked {
		out[k] = true
	}
	return out
}

func alertID(service, alertname string) string { return service + "/" + alertname }

// quietProxy answers 502 when its target is down (a killed replica) without
// logging each time.
func quietProxy(target *url.URL) *httputil.ReverseProxy {
	p := httputil.NewSingleHostReverseProxy(target)
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	return p
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// pageStates is, per PagerDuty dedup key, the distinct incident states
// (event and severity) its triggers carried, and the service they name.
func pageStates(pd *fakepd.Server) (states map[string]map[string]bool, services map[string]string) {
	states, services = map[string]map[string]bool{}, map[string]string{}
	for _, ev := range pd.Events() {
		if ev.Action != "trigger" || ev.Payload == nil {
			continue
		}
		if states[ev.DedupKey] == nil {
			states[ev.DedupKey] = map[string]bool{}
		}
		states[ev.DedupKey][fmt.Sprintf("%v sev %v", ev.Payload.CustomDetails["event"], ev.Payload.CustomDetails["severity"])] = true
		services[ev.DedupKey] = ev.Payload.Source
	}
	return states, services
}

// triggersBy counts PagerDuty triggers per replica and dedup key, as the
// taps saw them forwarded.
func (l *deliveryLog) triggersBy() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, d := range l.by("") {
		if d.Receiver != "pagerduty" || d.Action != "trigger" || d.Refused {
			continue
		}
		if out[d.Replica] == nil {
			out[d.Replica] = map[string]int{}
		}
		out[d.Replica][d.DedupKey]++
	}
	return out
}

// sev1Webhook is one Alertmanager notification of a Sev 1 alert (62%
// errors) of service, as Alertmanager sends it.
func sev1Webhook(service string) []byte {
	body, _ := json.Marshal(map[string]any{
		"version": "4", "status": "firing", "receiver": "amtriage", "externalURL": "http://am:9093",
		"groupKey": `{}:{service="` + service + `"}`, "truncatedAlerts": 0,
		"alerts": []map[string]any{{
			"status": "firing", "labels": map[string]string{"alertname": "Errors", "service": service},
			"annotations": map[string]string{"error_ratio": "62%", "summary": service + " failing"},
			"startsAt":    "2026-11-23T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fmt.Sprintf("%x", service),
		}},
	})
	return body
}

// withReplicaTag sets the session variable amtriage.replica on every
// connection of dsn, so the audit trigger can tell whose writes it sees.
func withReplicaTag(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	// %20, not +: the DSN's query is not form-encoded.
	u.RawQuery += "&options=" + strings.ReplaceAll(url.QueryEscape("-c amtriage.replica="+name), "+", "%20")
	return u.String()
}

// auditTables are the tables only the leader writes, each write fenced.
var auditTables = []string{"incidents", "alerts", "tombstones", "heartbeats", "outbox", "receiver_state", "progress", "dead_letters", "evidence"}

// installAudit adds a trigger to every leader-only table that records each
// committed write statement with the writer's amtriage.replica and the
// lease as the writer's transaction saw it. A rolled-back write leaves no
// row: the audit is what the database accepted.
func installAudit(t testing.TB, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	stmts := []string{
		`CREATE TABLE audit (id bigserial PRIMARY KEY, tbl text, op text, replica text, holder text, epoch bigint, at timestamptz DEFAULT clock_timestamp())`,
		`CREATE FUNCTION audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
			INSERT INTO audit (tbl, op, replica, holder, epoch)
			SELECT TG_TABLE_NAME, TG_OP, current_setting('amtriage.replica', true), holder, epoch FROM lease;
			RETURN NULL;
		 END $$`,
	}
	for _, tbl := range auditTables {
		stmts = append(stmts, fmt.Sprintf(`CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH STATEMENT EXECUTE FUNCTION audit_write()`, tbl))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("audit: %s: %v", s, err)
		}
	}
}

// auditRow is one committed write statement.
type auditRow struct {
	Table, Op, Replica, Holder string
	Epoch                      int64
	At                         time.Time
}

func readAudit(t testing.TB, dsn string) []auditRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tbl, op, coalesce(replica, ''), holder, epoch, at FROM audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		err := r.Scan(&a.Table, &a.Op, &a.Replica, &a.Holder, &a.Epoch, &a.At)
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fencedAt runs an empty state transaction at epoch, as a leader's write
// does (pgstore.Fence first), and returns its error.
func fencedAt(t testing.TB, dsn string, epoch int64) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return pgstore.Fence(ctx, tx, epoch) })
}
