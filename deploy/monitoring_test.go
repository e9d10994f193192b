// Package deploy_test checks what deploy/ ships for watching amtriage itself:
// the Grafana dashboard and the Prometheus rules are well formed, promtool
// accepts the rules and their unit tests pass, and every metric either of
// them names is one the daemon exports.
package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/testproc"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store/pgstore"
	"github.com/amtriage/amtriage/triage"
	"github.com/amtriage/amtriage/triage/evidence"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/signal"
)

const (
	dashboardFile = "grafana/amtriage-dashboard.json"
	rulesFile     = "prometheus/amtriage-rules.yml"
	rulesTestFile = "prometheus/amtriage-rules.test.yml"
	readmeFile    = "../README.md"
	// runbookURL is the README section every alert points at; the test
	// checks that section exists and names each alert.
	runbookURL     = "https://github.com/amtriage/amtriage/blob/main/README.md#monitoring-amtriage"
	runbookHeading = "## Monitoring amtriage"
	// dsVar is how every panel and query names its data source: the
	// dashboard's variable, never a uid of one Grafana's.
	dsVar = "${datasource}"
)

// --- The rules -------------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(f.Groups) != 1 || f.Groups[0].Name != "amtriage" {
		t.Fatalf("%s: want one group named amtriage, got %d groups", rulesFile, len(f.Groups))
	}
	return f.Groups[0].Rules
}

// promtool is Debian's prometheus package's /usr/bin/promtool (.ci/run
// installs it); without it the test skips locally and fails under CI=true.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		testproc.Missing(t, "promtool is not installed (.ci/run installs Debian's prometheus package)",
			"promtool not found: apt-get install prometheus (it ships /usr/bin/promtool) to run this test")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolAcceptsTheRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"check rules", []string{"check", "rules", rulesFile}, "SUCCESS"},
		{"unit tests", []string{"test", "rules", rulesTestFile}, "SUCCESS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out := runPromtool(t, tc.args...); !strings.Contains(out, tc.want) {
				t.Errorf("promtool %s: no %q in\n%s", strings.Join(tc.args, " "), tc.want, out)
			}
		})
	}
}

func TestRulesAlertOnWhatTheIssueAsks(t *testing.T) {
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	section := readmeSection(string(readme), runbookHeading)
	if section == "" {
		t.Fatalf("README has no %q section, which every runbook_url points at", runbookHeading)
	}
	byName := map[string]rule{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			t.Errorf("rule %q: only alerts belong in this group", r.Record)
			continue
		}
		if _, dup := byName[r.Alert]; dup {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		byName[r.Alert] = r
		if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
			t.Errorf("%s: for %q: a positive duration is needed, or one scrape's blip pages", r.Alert, r.For)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if got := r.Annotations["runbook_url"]; got != runbookURL {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, runbookURL)
		}
		if !strings.Contains(section, r.Alert) {
			t.Errorf("%s: the README's %q section does not say what to do about it", r.Alert, runbookHeading)
		}
	}
	// Issue 13, point 7, and the brief: what must be alerted on, by the
	// metric that shows it.
	for _, want := range []struct{ alert, metric string }{
		{"AmtriageDown", "up"},
		{"AmtriageNoLeader", "amtriage_leader"},
		{"AmtriageOutboxStuck", "amtriage_outbox_oldest_age_seconds"},
		{"AmtriageDeadLettersRising", "amtriage_dead_letters"},
		{"AmtriageInboxNotDraining", "amtriage_inbox_pending"},
		{"AmtriageHeartbeatMissing", "amtriage_heartbeat_last_seen_timestamp_seconds"},
		{"AmtriageConfigReloadFailed", "amtriage_config_last_reload_successful"},
	} {
		r, ok := byName[want.alert]
		if !ok {
			t.Errorf("no alert %s", want.alert)
			continue
		}
		if !regexp.MustCompile(`\b` + want.metric + `\b`).MatchString(r.Expr) {
			t.Errorf("%s: expr %q does not read %s", want.alert, r.Expr, want.metric)
		}
	}
}

// readmeSection is the text under heading up to the next heading of the
// same or a higher level.
func readmeSection(doc, heading string) string {
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// --- The dashboard ---------------------------------------------------------

type panel struct {
	ID         int                 `json:"id"`
	Type       string              `json:"type"`
	Title      string              `json:"title"`
	Datasource *datasource         `json:"datasource"`
	GridPos    *struct{ W, H int } `json:"gridPos"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d, data
}

// allPanels flattens rows, collapsed or not.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// templateQuery is a query variable's query: a string, or Grafana 10's
// {"query": ...} object.
func templateQuery(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Query
}

func TestDashboardIsWellFormed(t *testing.T) {
	d, raw := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed to import and link it", d.Title, d.UID)
	}
	// 36 is Grafana 9's: datasource references by object, which dsVar needs.
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later", d.SchemaVersion)
	}
	var dsVarOK bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" {
			dsVarOK = v.Type == "datasource" && templateQuery(v.Query) == "prometheus"
		} else if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dsVar) {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, dsVar)
		}
	}
	if !dsVarOK {
		t.Errorf("no datasource variable of type datasource querying prometheus")
	}
	ids := map[int]string{}
	panels := allPanels(d.Panels)
	var queries int
	for _, p := range panels {
		if p.Title == "" {
			t.Errorf("panel %d (%s) has no title", p.ID, p.Type)
		}
		if p.ID <= 0 {
			t.Errorf("panel %q has no id", p.Title)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, other, p.Title)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q has no gridPos: Grafana would stack it at 0,0", p.Title)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("row %q has queries", p.Title)
			}
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsVar || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want {prometheus %s}", p.Title, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q query %s: empty expr", p.Title, q.RefID)
			}
			if q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource != nil && q.Datasource.UID != dsVar {
				t.Errorf("panel %q query %s: datasource uid %q, want %s", p.Title, q.RefID, q.Datasource.UID, dsVar)
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
	// Any datasource uid anywhere (annotations, links, a pasted panel) must be
	// the variable: a uid of one Grafana's breaks the import into another.
	for _, m := range regexp.MustCompile(`"uid":\s*"([^"]*)"`).FindAllSubmatch(raw, -1) {
		if u := string(m[1]); u != dsVar && u != d.UID {
			t.Errorf("hard-coded uid %q in the dashboard", u)
		}
	}
}

// What issue 13's point 7 asks the dashboard to show, by metric.
func TestDashboardShowsWhatTheIssueAsks(t *testing.T) {
	d, _ := loadDashboard(t)
	shown := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			for _, n := range metricRef.FindAllString(q.Expr, -1) {
				shown[baseName(n)] = true
			}
		}
	}
	for _, tc := range []struct{ what, metric string }{
		{"intake rate and codes", "amtriage_webhook_requests_total"},
		{"acknowledgement latency", "amtriage_webhook_request_duration_seconds"},
		{"inbox pending", "amtriage_inbox_pending"},
		{"incidents open by severity", "amtriage_incidents_open"},
		{"time to page", "amtriage_webhook_to_page_seconds"},
		{"outbox depth per receiver", "amtriage_outbox_depth"},
		{"outbox oldest age per receiver", "amtriage_outbox_oldest_age_seconds"},
		{"dead letters kept", "amtriage_dead_letters"},
		{"dead letters per receiver", "amtriage_notifications_dead_letters_total"},
		{"signal latency", "amtriage_signal_request_duration_seconds"},
		{"enrichment latency", "amtriage_enrichment_duration_seconds"},
		{"leader", "amtriage_leader"},
		{"action requests", "amtriage_action_requests_total"},
		{"heartbeat", "amtriage_heartbeat_last_seen_timestamp_seconds"},
		{"config reload", "amtriage_config_last_reload_successful"},
	} {
		if !shown[tc.metric] {
			t.Errorf("%s: no panel queries %s", tc.what, tc.metric)
		}
	}
}

// grafanaVars stand in for the dashboard's variables so promtool can parse
// its queries as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".+", "$instance", ".+")

// TestDashboardQueriesArePromQL has promtool parse every panel query, as
// recording rules in a scratch file: a typo there shows as an empty panel,
// which nothing else would catch.
func TestDashboardQueriesArePromQL(t *testing.T) {
	tool := promtool(t)
	d, _ := loadDashboard(t)
	type rec struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var recs []rec
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			recs = append(recs, rec{Record: fmt.Sprintf("dashboard:panel_%d:%s", p.ID, q.RefID), Expr: grafanaVars.Replace(q.Expr)})
		}
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recs}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(tool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's %d queries: %v\n%s", len(recs), err, res)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(recs)); !strings.Contains(string(res), want) {
		t.Errorf("promtool: no %q in\n%s", want, res)
	}
}

// --- The metric names ------------------------------------------------------

// metricRef finds amtriage's metric names in PromQL. The promql parser is
// not a dependency (github.com/prometheus/prometheus is not in go.mod), and
// every name of amtriage's starts with amtriage_, which no label value or
// function name of these queries does.
var metricRef = regexp.MustCompile(`\bamtriage_[a-zA-Z0-9_]+`)

// histogramSuffixes are the series a histogram (or summary) is exposed as.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

func baseName(n string) string {
	for _, s := range histogramSuffixes {
		if b, ok := strings.CutSuffix(n, s); ok {
			return b
		}
	}
	return n
}

// exported is a metric's kind by name: "histogram" (its _bucket, _sum and
// _count series exist) or "other".
type exported map[string]string

// check says why name is not one of the exported metrics, or "".
func (e exported) check(name string) string {
	if _, ok := e[name]; ok {
		return ""
	}
	for _, s := range histogramSuffixes {
		if base, ok := strings.CutSuffix(name, s); ok {
			switch e[base] {
			case "histogram":
				return ""
			case "":
			default:
				return fmt.Sprintf("%s is not a histogram: it has no %s series", base, s)
			}
		}
	}
	return "the daemon exports no such metric"
}

// recorder is a Registerer that records the descriptors of every collector
// registered through it, before passing it on (to next, if set): vectors
// without children are missing from Gather, not from Describe.
type recorder struct {
	next prometheus.Registerer
	mu   sync.Mutex
	seen exported
	errs []error
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	kind := "other"
	// Summary has Histogram's method set: both have _sum and _count.
	if _, ok := c.(prometheus.Histogram); ok {
		kind = "histogram"
	} else if _, ok := c.(*prometheus.HistogramVec); ok {
		kind = "histogram"
	}
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	r.mu.Lock()
	for d := range ch {
		// Desc has no accessor for its name; its String is stable
		// (client_golang prints fqName first since 0.9).
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			r.errs = append(r.errs, fmt.Errorf("no fqName in descriptor %s", d))
			continue
		}
		r.seen[m[1]] = kind
	}
	r.mu.Unlock()
	if r.next == nil {
		return nil
	}
	return r.next.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool {
	return r.next != nil && r.next.Unregister(c)
}

type discard struct{}

func (discard) Name() string                                          { return "discard" }
func (discard) Notify(context.Context, *incident.Event) (bool, error) { return false, nil }

// daemonMetrics builds a real daemon (bbolt, the defaults) and returns every
// metric it exports: what its registry gathers (the Go and process metrics,
// the store's, the reload gauges, the dead letters, the evidence's), plus
// the descriptors of what registers through the Enrichment hook (signal
// sources, Kubernetes informers, as cmd/amtriage does) and of the metric
// sets the daemon builds with exported constructors (pipeline, outbox, the
// PostgreSQL elector), whose vectors gather nothing until used.
func daemonMetrics(t *testing.T) exported {
	t.Helper()
	seen := exported{}
	cfg := rules.Default()
	cfg.Store.Path = t.TempDir()
	hook := &recorder{seen: seen}
	var gatherer prometheus.Gatherer
	d, err := triage.NewDaemon(cfg, triage.Options{
		Log:       slog.New(slog.DiscardHandler),
		Notifiers: []notify.Notifier{discard{}},
		Enrichment: func(reg prometheus.Registerer) (*triage.Enrichment, error) {
			g, ok := reg.(prometheus.Gatherer)
			if !ok {
				return nil, fmt.Errorf("the daemon's registerer %T is no Gatherer", reg)
			}
			gatherer, hook.next = g, reg
			m := signal.NewMetrics(hook)
			kube.New(fake.NewClientset(), kube.Options{Metrics: m, Registerer: hook})
			// Empty evidence sources: the collector and its metrics exist,
			// nothing is collected.
			return &triage.Enrichment{Evidence: &evidence.Sources{}}, nil
		},
	})
	if err != nil {
		t.Fatalf("NewDaemon: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	mfs, err := gatherer.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		kind := "other"
		if t := mf.GetType(); t == dto.MetricType_HISTOGRAM || t == dto.MetricType_GAUGE_HISTOGRAM || t == dto.MetricType_SUMMARY {
			kind = "histogram"
		}
		seen[mf.GetName()] = kind
	}
	// A registry of their own: registering a set twice would panic.
	sets := &recorder{next: prometheus.NewRegistry(), seen: seen}
	triage.NewMetrics(sets)
	notify.NewMetrics(sets)
	if _, err := pgstore.NewElector(nil, pgstore.ElectorOptions{Holder: "monitoring-test", Registerer: sets}); err != nil {
		t.Fatalf("elector metrics: %v", err)
	}
	if err := errors.Join(append(hook.errs, sets.errs...)...); err != nil {
		t.Fatal(err)
	}
	return seen
}

func TestMetricCheckRefusesWhatIsNotExported(t *testing.T) {
	e := exported{"amtriage_inbox_pending": "other", "amtriage_webhook_to_page_seconds": "histogram"}
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"amtriage_inbox_pending", true},
		{"amtriage_webhook_to_page_seconds_bucket", true},
		{"amtriage_webhook_to_page_seconds_count", true},
		{"amtriage_webhook_to_page_seconds", true},
		{"amtriage_inbox_pending_bucket", false}, // a gauge has no buckets
		{"amtriage_inbox_pendin", false},
		{"amtriage_no_such_metric_total", false},
	} {
		if why := e.check(tc.name); (why == "") != tc.ok {
			t.Errorf("check(%s) = %q, want ok=%v", tc.name, why, tc.ok)
		}
	}
}

func TestEveryMetricNamedIsExported(t *testing.T) {
	seen := daemonMetrics(t)
	// The collection itself: one name from each way it is found, so an
	// empty or partial set cannot pass for a clean dashboard.
	for _, n := range []string{
		"go_goroutines",                            // Gather: Go collector
		"amtriage_config_last_reload_successful",   // Gather: newDaemon's own
		"amtriage_dead_letters",                    // Gather: the dead-letter collector
		"amtriage_evidence_bytes",                  // Gather: the evidence collector
		"amtriage_signal_request_duration_seconds", // Describe: the Enrichment hook
		"amtriage_kubernetes_informer_synced",      // Describe: the Enrichment hook
		"amtriage_webhook_requests_total",          // Describe: triage.NewMetrics
		"amtriage_outbox_oldest_age_seconds",       // Describe: notify.NewMetrics
	} {
		if _, ok := seen[n]; !ok {
			t.Errorf("the daemon's metrics, as collected, lack %s", n)
		}
	}

	type ref struct{ where, expr string }
	var refs []ref
	for _, r := range loadRules(t) {
		refs = append(refs, ref{"rule " + r.Alert, r.Expr})
	}
	d, _ := loadDashboard(t)
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			refs = append(refs, ref{fmt.Sprintf("panel %q query %s", p.Title, q.RefID), q.Expr})
		}
	}
	for _, v := range d.Templating.List {
		refs = append(refs, ref{"variable " + v.Name, templateQuery(v.Query)})
	}
	var names int
	for _, r := range refs {
		for _, n := range metricRef.FindAllString(r.expr, -1) {
			names++
			if why := seen.check(n); why != "" {
				t.Errorf("%s names %s: %s", r.where, n, why)
			}
		}
	}
	if names == 0 {
		t.Fatal("no amtriage metric found in the rules and the dashboard")
	}
	if t.Failed() {
		var all []string
		for n := range seen {
			if strings.HasPrefix(n, "amtriage_") {
				all = append(all, n)
			}
		}
		slices.Sort(all)
		t.Logf("the daemon exports:\n%s", strings.Join(all, "\n"))
	}
}
