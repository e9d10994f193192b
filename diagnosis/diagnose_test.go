package diagnosis

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/amtriage/amtriage/severity"
)

// alertStart is the alert's startsAt in every test; at is two minutes later.
var (
	alertStart = time.Date(2026, 3, 14, 3, 0, 0, 0, time.UTC)
	at         = alertStart.Add(2 * time.Minute)
)

// ---- terse builders ----

func crashPod(name string) Pod {
	return Pod{Name: name, Phase: "Running", Reason: "CrashLoopBackOff", Container: "api", Restarts: 5,
		LastTerminated: "Error (exit 1)", Message: "back-off 5m0s restarting failed container=api",
		ReplicaSet: "api-7d9f", Node: "node-1", Created: alertStart.Add(-10 * time.Minute)}
}

func readyPod(name string) Pod {
	return Pod{Name: name, Phase: "Running", Ready: true, Container: "api", ReplicaSet: "api-7d9f",
		Node: "node-1", Created: alertStart.Add(-time.Hour)}
}

func pendingPod(name, msg string) Pod {
	return Pod{Name: name, Phase: "Pending", Reason: "Unschedulable", Message: msg, ReplicaSet: "api-7d9f",
		Created: alertStart.Add(-5 * time.Minute)}
}

func oomPod(name string) Pod {
	p := crashPod(name)
	p.LastTerminated = "OOMKilled (exit 137)"
	return p
}

func pods(n int, mk func(string) Pod) []Pod {
	out := make([]Pod, n)
	for i := range out {
		out[i] = mk(fmt.Sprintf("api-7d9f-%c%d", 'a'+i%26, i))
	}
	return out
}

// rollout: revision rev created ago before the alert.
func rollout(rev int64, ago time.Duration, from, to string) Rollout {
	r := Rollout{Revision: rev, ReplicaSet: fmt.Sprintf("api-rs%d", rev), Created: alertStart.Add(-ago),
		Images: []string{"shop/api:" + to}, Replicas: 3}
	if from != "" {
		r.Change = fmt.Sprintf("api: shop/api:%s → shop/api:%s", from, to)
	}
	return r
}

func warn(reason, object, msg string) Event {
	return Event{Time: alertStart.Add(-time.Minute), Object: object, Reason: reason, Message: msg, Count: 3}
}

func snap(ps []Pod, ready, available int32, rs []Rollout, evs ...Event) *Snapshot {
	return &Snapshot{
		Namespace: "shop", Workload: "deployment/api",
		Deployment: &Deployment{Name: "api", Desired: 3, Updated: 3, Ready: ready, Available: available, Generation: 9, Revision: 7},
		Pods:       ps, PodsTotal: len(ps), Events: evs, Rollouts: rs,
	}
}

func withLogs(s *Snapshot, previous bool, lines ...string) *Snapshot {
	s.Logs = &Logs{Pod: s.Pods[0].Name, Container: "api", Previous: previous, Lines: lines}
	return s
}

func input(s *Snapshot) Input {
	return Input{Snapshot: s, At: at, AlertStart: alertStart,
		Labels: map[string]string{"alertname": "HighErrorRate", "service": "api"}}
}

// crashWithRollback is the golden case: 3/3 pods crash-looping 12m after
// revision 7 changed the image.
func crashWithRollback() Input {
	s := snap(pods(3, crashPod), 0, 0,
		[]Rollout{rollout(7, 12*time.Minute, "1.4.2", "1.5.0"), rollout(6, 72*time.Hour, "1.4.1", "1.4.2")},
		warn("BackOff", "Pod/api-7d9f-a0", "Back-off restarting failed container api in pod api-7d9f-a0_shop"),
		warn("Unhealthy", "Pod/api-7d9f-a0", "Readiness probe failed: Get \"http://10.1.2.3:8080/health\": dial tcp 10.1.2.3:8080: connect: connection refused"))
	for i := range s.Rollouts {
		s.Rollouts[i].ReplicaSet = "api-5c4b"
	}
	s.Rollouts[0].ReplicaSet = "api-7d9f"
	withLogs(s, true, `{"level":"fatal","msg":"config: FEATURE_FLAGS_URL is required"}`)
	in := input(s)
	in.Signals.Reachable = severity.Bool{Known: true, Value: false, Source: "kubernetes", Note: "desired 3, available 0"}
	return in
}

func TestDiagnose(t *testing.T) {
	const undo = "kubectl rollout undo deployment/api -n shop --to-revision=6"
	insufficient := "0/3 nodes are available: 3 Insufficient cpu."

	type tc struct {
		name     string
		in       Input
		cat      Category
		command  string
		summary  []string // substrings of the summary
		evidence []string // substrings of some evidence line each
		notIn    []string // substrings of neither summary nor evidence
	}
	cases := []tc{
		{
			name:    "crashloop with rollout 12m before",
			in:      crashWithRollback(),
			cat:     ConfigOrDeployment,
			command: undo,
			summary: []string{"config or bad deployment: 3/3 pods CrashLoopBackOff", "revision 7 (api:1.4.2 → api:1.5.0) rolled out 12m before the alert"},
			evidence: []string{"0/3 pods available", "api: shop/api:1.4.2 → shop/api:1.5.0", "the failing pods run the newest ReplicaSet api-7d9f",
				"roll back to revision 6", "FEATURE_FLAGS_URL is required"},
			// The readiness probe's "connection refused" is the app being
			// down, not the network.
			notIn: []string{"infrastructure"},
		},
		{
			name:     "crashloop with rollout 3h before",
			in:       input(snap(pods(3, crashPod), 0, 0, []Rollout{rollout(7, 3*time.Hour, "1.4.2", "1.5.0"), rollout(6, 72*time.Hour, "", "1.4.2")})),
			cat:      ConfigOrDeployment,
			summary:  []string{"3/3 pods CrashLoopBackOff", "no rollout in the 30m before the alert", "config issue likely, check ConfigMaps/Secrets"},
			evidence: []string{"last revision 7", "3h before the alert"},
		},
		{
			name:    "crashloop with rollout within window, one revision only",
			in:      input(snap(pods(3, crashPod), 0, 0, []Rollout{rollout(1, 5*time.Minute, "", "1.0.0")})),
			cat:     ConfigOrDeployment,
			summary: []string{"revision 1 rolled out 5m before the alert", "no previous revision to roll back to"},
		},
		{
			name: "rollout during the incident counts",
			in: input(snap(pods(3, crashPod), 0, 0,
				[]Rollout{rollout(7, -90*time.Second, "1.4.2", "1.5.0"), rollout(6, 72*time.Hour, "", "1.4.2")})),
			cat:     ConfigOrDeployment,
			command: undo,
			summary: []string{"rolled out 1m after the alert started"},
		},
		{
			name: "rollout after the evaluation instant is ignored",
			in: input(snap(pods(3, crashPod), 0, 0,
				[]Rollout{rollout(7, -5*time.Minute, "1.4.2", "1.5.0"), rollout(6, 72*time.Hour, "", "1.4.2")})),
			cat:     ConfigOrDeployment,
			summary: []string{"config issue likely"},
		},
		{
			name:     "pending unschedulable",
			in:       input(snap([]Pod{readyPod("api-1"), pendingPod("api-2", insufficient), pendingPod("api-3", insufficient)}, 1, 1, nil)),
			cat:      Resources,
			summary:  []string{"resources: 2/3 pods Pending, unschedulable: " + insufficient},
			evidence: []string{"scheduler: " + insufficient},
		},
		{
			name: "FailedScheduling event only",
			in: input(snap([]Pod{{Name: "api-1", Phase: "Pending"}}, 0, 0, nil,
				warn("FailedScheduling", "Pod/api-1", "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector."))),
			cat:      Resources,
			summary:  []string{"1/1 pods Pending, FailedScheduling: 0/5 nodes are available: 5 node(s) didn't match"},
			evidence: []string{"0/3 pods available"},
		},
		{
			name:     "OOMKilled is a memory limit: resources",
			in:       input(snap(pods(3, oomPod), 0, 0, []Rollout{rollout(7, 3*time.Hour, "1.4.2", "1.5.0")})),
			cat:      Resources,
			summary:  []string{"resources: 3/3 pods OOMKilled — raise the memory limit or find the leak"},
			evidence: []string{"last OOMKilled (exit 137)", "3 pods OOMKilled"},
		},
		{
			name: "OOMKilled after a rollout: resources with the undo",
			in: input(snap(pods(3, oomPod), 0, 0,
				[]Rollout{rollout(7, 12*time.Minute, "1.4.2", "1.5.0"), rollout(6, 72*time.Hour, "", "1.4.2")})),
			cat:     Resources,
			command: undo,
			summary: []string{"OOMKilled", "revision 7 (api:1.4.2 → api:1.5.0) rolled out 12m before the alert"},
		},
		{
			name: "running and ready but failing: application",
			in: func() Input {
				in := input(withLogs(snap(pods(3, readyPod), 3, 3, []Rollout{rollout(7, 5*time.Hour, "1.4.2", "1.5.0")}),
					false, "ERROR handler /checkout: nil pointer dereference"))
				in.Signals.ErrorRatio = severity.Float{Known: true, Value: 0.3, Source: "prometheus"}
				return in
			}(),
			cat:      Application,
			summary:  []string{"application: 3/3 pods running and ready but 30% of requests failing — check application logs"},
			evidence: []string{"error ratio 30% [prometheus]", "nil pointer dereference"},
			notIn:    []string{"pods available"},
		},
		{
			name: "service probe crashed while pods ready: application",
			in: func() Input {
				in := input(snap(pods(3, readyPod), 3, 3, nil))
				in.Service = &Probe{Target: "api", Outcome: "crashed", Detail: "HTTP 500"}
				return in
			}(),
			cat:      Application,
			summary:  []string{"but its health probe crashed"},
			evidence: []string{"service probe api: crashed — HTTP 500"},
		},
		{
			name: "postgres dependency down beats CrashLoopBackOff",
			in: func() Input {
				in := crashWithRollback()
				in.Snapshot.Logs.Lines = []string{"FATAL: dial error: connection refused to postgres:5432"}
				in.Dependencies = []Probe{{Target: "redis", Outcome: "up"}, {Target: "postgres", Outcome: "down", Detail: "connection refused"}}
				return in
			}(),
			cat:      Infrastructure,
			summary:  []string{"infrastructure: dependency postgres down", "3/3 pods CrashLoopBackOff", "escalate"},
			evidence: []string{"dependency postgres: down — connection refused", "connection refused to postgres:5432", "0/3 pods available", "if the database and network are healthy, suspect it: " + undo},
			notIn:    []string{"redis"},
		},
		{
			name: "dependency probe error is no sign",
			in: func() Input {
				in := input(snap(pods(3, crashPod), 0, 0, nil))
				in.Dependencies = []Probe{{Target: "postgres", Outcome: "error", Detail: "probe misconfigured"}}
				return in
			}(),
			cat: ConfigOrDeployment,
		},
		{
			name: "event dial tcp to the database",
			in: input(snap(pods(3, crashPod), 0, 0, nil,
				warn("Failed", "Pod/api-7d9f-a0", "dial tcp 10.0.0.5:5432: connect: connection refused"))),
			cat:      Infrastructure,
			summary:  []string{"events show connection refused"},
			evidence: []string{"event Failed on Pod/api-7d9f-a0 (×3): dial tcp 10.0.0.5:5432: connect: connection refused"},
		},
		{
			name: "sandbox event while pods start",
			in: input(snap([]Pod{{Name: "api-1", Phase: "Pending", Reason: "ContainerCreating"}}, 0, 0, nil,
				warn("FailedCreatePodSandBox", "Pod/api-1", `Failed to create pod sandbox: plugin type="calico" failed (add): error getting ClusterInformation`))),
			cat:     Infrastructure,
			summary: []string{"FailedCreatePodSandBox events (network)"},
		},
		{
			name:     "pods on an unreachable node",
			in:       input(snap([]Pod{readyPod("api-1"), {Name: "api-2", Phase: "Unknown", Node: "node-7"}, {Name: "api-3", Phase: "Unknown", Node: "node-7"}}, 1, 1, nil)),
			cat:      Infrastructure,
			summary:  []string{"infrastructure: node node-7 unreachable; 2/3 pods Unknown"},
			evidence: []string{"pod api-2 phase Unknown on node node-7"},
		},
		{
			name: "quota exceeded",
			in: input(snap(nil, 0, 0, nil,
				warn("FailedCreate", "ReplicaSet/api-7d9f", `pods "api-7d9f-x" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=8, limited: cpu=8`))),
			cat:      Resources,
			summary:  []string{"resources: FailedCreate on ReplicaSet/api-7d9f: pods \"api-7d9f-x\" is forbidden: exceeded quota"},
			evidence: []string{"0/3 pods available"},
		},
		{
			name:    "stale FailedScheduling with every pod ready is history",
			in:      input(snap(pods(3, readyPod), 3, 3, nil, warn("FailedScheduling", "Pod/api-1", "0/3 nodes are available: 3 Insufficient memory."))),
			cat:     WhatChanged,
			summary: []string{"3/3 pods running and ready"},
		},
		{
			name: "missing ConfigMap mount is config, not storage",
			in: input(snap([]Pod{{Name: "api-1", Phase: "Pending", Reason: "ContainerCreating"}}, 0, 0, nil,
				warn("FailedMount", "Pod/api-1", `MountVolume.SetUp failed for volume "cfg" : configmap "api-config" not found`))),
			cat:      ConfigOrDeployment,
			summary:  []string{`config or bad deployment: pods cannot start: configmap "api-config" not found; no rollout`, "check ConfigMaps/Secrets"},
			evidence: []string{"event FailedMount"},
		},
		{
			name: "image pull network error stays with the image",
			in: input(snap([]Pod{{Name: "api-1", Phase: "Pending", Reason: "ImagePullBackOff"}}, 0, 0, nil,
				warn("Failed", "Pod/api-1", `Failed to pull image "reg.example/api:1.5.0": dial tcp 10.9.9.9:443: i/o timeout`))),
			cat:     ConfigOrDeployment,
			summary: []string{"1/1 pods ImagePullBackOff", "image issue likely, check the image name and registry access"},
		},
		{
			name: "alertname PostgresDown",
			in: func() Input {
				in := input(snap(pods(3, readyPod), 3, 3, nil))
				in.Labels["alertname"] = "PostgresDown"
				return in
			}(),
			cat:      Infrastructure,
			summary:  []string{"alert PostgresDown names a database"},
			evidence: []string{`alert label alertname="PostgresDown" names a database`},
		},
		{
			name: "label tier=db",
			in: func() Input {
				in := input(snap(pods(3, readyPod), 3, 3, nil))
				in.Labels["tier"] = "db"
				return in
			}(),
			cat:      Infrastructure,
			evidence: []string{`alert label tier="db" names a database`},
		},
		{
			name: "log line of a refused database connection",
			in: input(withLogs(snap(pods(3, crashPod), 0, 0, nil), true,
				"starting api v1.5.0", `panic: pq: dial tcp 10.0.0.5:5432: connect: connection refused`)),
			cat:     Infrastructure,
			summary: []string{"logs show connection refused to a database"},
		},
		{
			name: "log line refused to a non-database port is no sign",
			in: input(withLogs(snap(pods(3, crashPod), 0, 0, nil), true,
				`panic: Get "http://flags:8080/": dial tcp 10.0.0.7:8080: connect: connection refused`)),
			cat: ConfigOrDeployment,
		},
		{
			name:     "no snapshot: skipped with reason",
			in:       Input{SkipReason: "kubernetes not configured", At: at, AlertStart: alertStart, Labels: map[string]string{"alertname": "HighErrorRate"}},
			cat:      Skipped,
			summary:  []string{"no Kubernetes diagnosis: kubernetes not configured"},
			evidence: nil,
		},
		{
			name: "no snapshot, dependency down: infrastructure",
			in: Input{SkipReason: "informer caches not synced", At: at, AlertStart: alertStart,
				Dependencies: []Probe{{Target: "postgres", Outcome: "hung", Detail: "timeout after 5s"}}},
			cat:      Infrastructure,
			summary:  []string{"infrastructure: dependency postgres hung — check connectivity and credentials, escalate"},
			evidence: []string{"dependency postgres: hung — timeout after 5s", "no Kubernetes diagnosis: informer caches not synced"},
		},
		{
			name: "nothing clear: what changed",
			in: func() Input {
				in := input(snap(pods(3, readyPod), 3, 3, []Rollout{rollout(7, 3*time.Hour, "1.4.2", "1.5.0"), rollout(6, 50*time.Hour, "1.4.1", "1.4.2")}))
				in.Signals.ErrorRatio = severity.Float{Known: true, Value: 0.002, Source: "prometheus"}
				return in
			}(),
			cat:      WhatChanged,
			summary:  []string{"what changed recently: nothing clear; 3/3 pods running and ready; last rollout revision 7 (api:1.4.2 → api:1.5.0) rolled out 3h before the alert", "check infrastructure changes"},
			evidence: []string{"revision 7 (ReplicaSet api-rs7, 3 replicas) rolled out 3h before the alert: api: shop/api:1.4.2 → shop/api:1.5.0", "revision 6 (ReplicaSet api-rs6, 3 replicas) rolled out 2d2h before the alert"},
		},
		{
			name: "desired 3, available 0 is always evidence",
			in: func() Input {
				s := snap([]Pod{{Name: "api-1", Phase: "Running"}, {Name: "api-2", Phase: "Running"}, {Name: "api-3", Phase: "Running"}}, 0, 0, nil)
				return input(s)
			}(),
			cat:      WhatChanged,
			summary:  []string{"3/3 pods not ready", "no rollout history"},
			evidence: []string{"0/3 pods available (deployment api: desired 3, updated 3, ready 0)", "pod api-1: Running, not ready"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diagnose(c.in)
			t.Logf("summary: %s\ncommand: %s\nevidence:\n  %s", d.Summary, d.Command, strings.Join(d.Evidence, "\n  "))
			if d.Category != c.cat {
				t.Errorf("category = %s, want %s", d.Category, c.cat)
			}
			if d.Command != c.command {
				t.Errorf("command = %q, want %q", d.Command, c.command)
			}
			if r := d.Rollback; c.command != "" && (r == nil || c.command != fmt.Sprintf("kubectl rollout undo deployment/%s -n %s --to-revision=%d", r.Deployment, r.Namespace, r.To) || r.From <= r.To) {
				t.Errorf("rollback = %+v, want the command's undo %q from a later revision", r, c.command)
			}
			for _, s := range c.summary {
				if !strings.Contains(d.Summary, s) {
					t.Errorf("summary %q lacks %q", d.Summary, s)
				}
			}
			for _, s := range c.evidence {
				if !containsLine(d.Evidence, s) {
					t.Errorf("evidence lacks %q", s)
				}
			}
			for _, s := range c.notIn {
				if strings.Contains(d.Summary, s) || containsLine(d.Evidence, s) {
					t.Errorf("%q found in the diagnosis", s)
				}
			}
			checkShape(t, d)
			if d.Snapshot != c.in.Snapshot {
				t.Errorf("Snapshot is not the input's")
			}
			if again := Diagnose(c.in); !reflect.DeepEqual(again, d) {
				t.Errorf("not deterministic:\n%#v\n%#v", d, again)
			}
		})
	}
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// checkShape: one summary line ≤ 200 runes, ≤ 8 evidence lines.
func checkShape(t *testing.T, d Diagnosis) {
	t.Helper()
	if n := utf8.RuneCountInString(d.Summary); n > MaxSummary || n == 0 || strings.ContainsAny(d.Summary, "\r\n") {
		t.Errorf("summary: %d runes or several lines: %q", n, d.Summary)
	}
	if len(d.Evidence) > MaxEvidence {
		t.Errorf("%d evidence lines", len(d.Evidence))
	}
	for _, e := range d.Evidence {
		if strings.ContainsAny(e, "\r\n") || !utf8.ValidString(e) || utf8.RuneCountInString(e) > maxLine {
			t.Errorf("evidence line %q", e)
		}
	}
}

// With the evidence full, "0/3 pods available" still survives the cap.
func TestUnavailableSurvivesCap(t *testing.T) {
	in := crashWithRollback()
	in.Snapshot.Partial = []string{"a", "b", "c", "d", "e"}
	in.Snapshot.Logs.Lines = []string{"1", "2", "3", "4", "5"}
	in.Dependencies = []Probe{{Target: "a", Outcome: "down"}, {Target: "b", Outcome: "down"}, {Target: "c", Outcome: "down"}, {Target: "d", Outcome: "down"}, {Target: "e", Outcome: "down"}}
	d := Diagnose(in)
	if !containsLine(d.Evidence, "0/3 pods available") || len(d.Evidence) > MaxEvidence {
		t.Fatalf("evidence: %q", d.Evidence)
	}
}

func TestWordMatching(t *testing.T) {
	all := append(append([]string(nil), dbWords...), netWords...)
	hits := map[string]string{
		"PostgresDown": "postgres", "PostgreSQLReplicationLag": "postgresql", "MySQLDown": "mysql", "HighDBLatency": "db",
		"DBConnectionErrors": "db", "RedisMemoryHigh": "redis", "CoreDNSDown": "dns", "backend-db": "db",
		"NodeNetworkReceiveErrs": "network", "api_db_errors": "db", "ConnectionPoolExhausted": "connection", "mongodb": "mongodb",
	}
	for s, want := range hits {
		if got := findWord(s, all); got != want {
			t.Errorf("findWord(%q) = %q, want %q", s, got, want)
		}
	}
	for _, s := range []string{"DbusFailure", "DBUSDown", "Redistribute", "CorednsErrors", "dbt_job_failed", "KubePodCrashLooping", "HighErrorRate", "Adbc", "Networking2"} {
		if got := findWord(s, all); got != "" {
			t.Errorf("findWord(%q) = %q, want none", s, got)
		}
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45s", 12 * time.Minute: "12m", 125 * time.Minute: "2h5m", 2 * time.Hour: "2h",
		50 * time.Hour: "2d2h", 72 * time.Hour: "3d", -12 * time.Minute: "12m",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}

// A big snapshot: 20 pods, 10 events, long multi-byte messages.
func bigSnapshot() *Snapshot {
	long := strings.Repeat("ошибка подключения 数据库 ✗ ", 60)
	ps := pods(MaxPods, crashPod)
	for i := range ps {
		ps[i].Message = long
	}
	var evs []Event
	for i := 0; i < MaxEvents; i++ {
		evs = append(evs, warn("BackOff", fmt.Sprintf("Pod/api-%d", i), long))
	}
	s := snap(ps, 0, 0, []Rollout{rollout(7, 12*time.Minute, "1.4.2", "1.5.0"), rollout(6, 72*time.Hour, "", "1.4.2"), rollout(5, 96*time.Hour, "", "1.4.1")}, evs...)
	s.PodsTotal = 40
	s.Rollouts[0].Change = long
	s.Logs = &Logs{Pod: "api-1", Container: "api", Previous: true, Lines: []string{long, long, long, long, long}}
	s.Partial = []string{long}
	return s
}

func TestDetailsJSON(t *testing.T) {
	for _, in := range []Input{crashWithRollback(), input(bigSnapshot()), {SkipReason: "kubernetes not configured"}} {
		d := Diagnose(in)
		b, err := json.Marshal(d.Details())
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 20<<10 { // worst case: every message clipped, in 2–3-byte runes
			t.Errorf("details are %d bytes", len(b))
		}
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back["category"] != string(d.Category) || back["summary"] != d.Summary {
			t.Errorf("details: %s", b)
		}
		if d.Snapshot != nil {
			if ps, _ := back["pods"].([]any); len(ps) > detailPods {
				t.Errorf("%d pods", len(ps))
			}
			if es, _ := back["events"].([]any); len(es) > detailEvents {
				t.Errorf("%d events", len(es))
			}
		}
	}
	d := Diagnose(crashWithRollback()).Details()
	if d["command"] != "kubectl rollout undo deployment/api -n shop --to-revision=6" {
		t.Errorf("command = %v", d["command"])
	}
	for _, k := range []string{"evidence", "deployment", "pods", "events", "rollouts", "logs"} {
		if _, ok := d[k]; !ok {
			t.Errorf("details lack %q", k)
		}
	}
}
