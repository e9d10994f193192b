package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/amtriage/amtriage/internal/amtest"
	"github.com/amtriage/amtriage/internal/kubetest"
	"github.com/amtriage/amtriage/internal/promtest"
)

// Short rate windows: with 1 s scrapes a [5s] window follows a change in ~6 s.
func ratioQuery(service string) string {
	return fmt.Sprintf(`sum(rate(http_requests_total{service=%q,code=~"5.."}[5s])) / sum(rate(http_requests_total{service=%q}[5s]))`, service, service)
}

// crashLoopingDeployment creates what a bad rollout leaves behind, as a
// cluster's controllers and kubelets would have: deployment api with
// revisions 1 (shop/api:1.4.2) and 2 (shop/api:1.5.0), three pods of
// revision 2 in CrashLoopBackOff, none available, and BackOff events.
func crashLoopingDeployment(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "api"}
	replicas := int32(3)
	dep, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels, "shop/api:1.5.0")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 0, AvailableReplicas: 0, UnavailableReplicas: 3}
	if _, err := c.AppsV1().Deployments(ns).UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: dep.UID, Controller: ptr(true)}}
	var rs2 *appsv1.ReplicaSet
	for _, r := range []struct{ rev, hash, image string }{{"1", "5c4b", "shop/api:1.4.2"}, {"2", "7d9f", "shop/api:1.5.0"}} {
		rsLabels := map[string]string{"app": "api", "pod-template-hash": r.hash}
		rs, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "api-" + r.hash, Labels: rsLabels, OwnerReferences: owner,
				Annotations: map[string]string{"deployment.kubernetes.io/revision": r.rev}},
			Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: rsLabels},
				Template: podTemplate(rsLabels, r.image)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rs2 = rs
	}
	for i := range 3 {
		name := fmt.Sprintf("api-7d9f-%c", 'a'+i)
		pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "api", "pod-template-hash": "7d9f"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs2.Name, UID: rs2.UID, Controller: ptr(true)}}},
			Spec: podTemplate(nil, "shop/api:1.5.0").Spec,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "api", Image: "shop/api:1.5.0", RestartCount: 5,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container=api"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}}}}}
		if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		warning(t, c, ns, "Pod", name, "BackOff", "Back-off restarting failed container api in pod "+name)
	}
}

// pendingDeployment: deployment worker whose pods cannot be scheduled.
func pendingDeployment(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "worker"}
	replicas := int32(2)
	dep, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "worker", Annotations: map[string]string{"deployment.kubernetes.io/revision": "1"}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels, "shop/worker:3.1")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsLabels := map[string]string{"app": "worker", "pod-template-hash": "66f8"}
	rs, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-66f8", Labels: rsLabels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "worker", UID: dep.UID, Controller: ptr(true)}},
			Annotations:     map[string]string{"deployment.kubernetes.io/revision": "1"}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: rsLabels}, Template: podTemplate(rsLabels, "shop/worker:3.1")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const msg = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
	for i := range 2 {
		name := fmt.Sprintf("worker-66f8-%c", 'a'+i)
		pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: rsLabels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr(true)}}},
			Spec: podTemplate(nil, "shop/worker:3.1").Spec,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: msg}}}
		if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		warning(t, c, ns, "Pod", name, "FailedScheduling", msg)
	}
}

func podTemplate(labels map[string]string, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: strings.Split(strings.TrimPrefix(image, "shop/"), ":")[0], Image: image}}}}
}

func warning(t *testing.T, c kubernetes.Interface, ns, kind, name, reason, msg string) {
	t.Helper()
	now := metav1.Now()
	_, err := c.CoreV1().Events(ns).Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: name + "."},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: ns, Name: name},
		Type:           corev1.EventTypeWarning, Reason: reason, Message: msg, Count: 3,
		FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// metric returns the value of one sample line of /metrics ("name{labels}").
func (d *daemon) metric(sample string) (float64, bool) {
	resp, err := d.get("/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

type diagnosisJSON struct {
	Category string   `json:"category"`
	Summary  string   `json:"summary"`
	Command  string   `json:"command"`
	Evidence []string `json:"evidence"`
	Snapshot *struct {
		Deployment *struct{ Desired, Available int } `json:"deployment"`
		Pods       []struct{ Name, Reason string }   `json:"pods"`
		Rollouts   []struct {
			Revision int    `json:"revision"`
			Change   string `json:"change"`
		} `json:"rollouts"`
		Events []struct{ Reason string } `json:"events"`
	} `json:"snapshot"`
}

func (d *daemon) incidentsRaw() (string, map[string]diagnosisJSON) {
	d.t.Helper()
	resp, err := d.get("/api/incidents")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		Incidents []struct {
			Service   string         `json:"service"`
			Diagnosis *diagnosisJSON `json:"diagnosis"`
		} `json:"incidents"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		d.t.Fatal(err)
	}
	out := map[string]diagnosisJSON{}
	for _, inc := range body.Incidents {
		if inc.Diagnosis != nil {
			out[inc.Service] = *inc.Diagnosis
		}
	}
	return string(raw), out
}

// TestSignalsAndDiagnosisEndToEnd: the whole chain with real components. A
// real Alertmanager delivers to the amtriage binary, which measures the
// error ratio in a real Prometheus and reads a real kube-apiserver's pods,
// deployments, ReplicaSets and events through informers; the page and the
// Slack message carry the diagnosis and the exact rollback command.
func TestSignalsAndDiagnosisEndToEnd(t *testing.T) {
	amtest.Binary(t)
	exp := promtest.NewExporter(t, "api")
	exp.SetErrorRatio(0.62)
	prom := promtest.Start(t, exp)
	kube := kubetest.Start(t)
	shop := kube.NewNamespace(t, "shop")
	crashLoopingDeployment(t, kube.Client, shop)
	pendingDeployment(t, kube.Client, shop)
	prom.WaitFor(t, ratioQuery("api"), 30*time.Second, promtest.Near(0.62, 1e-6))

	e := newReceiversEnv(t, `
prometheus:
  url: `+prom.URL()+`
  timeout: 2s
kubernetes:
  enabled: true
  kubeconfig: `+kube.Kubeconfig+`
services:
  - name: api
    match: ['service="api"']
    namespace: `+shop+`
    deployment: api
    queries:
      error_ratio: '`+ratioQuery("api")+`'
  - name: worker
    match: ['service="worker"']
    namespace: `+shop+`
    deployment: worker
`)
	d := startDaemon(t, e.cfg, freeAddr(t))
	for _, r := range []string{"pods", "deployments", "replicasets", "events"} {
		waitFor(t, 30*time.Second, r+" informer synced", func() bool {
			v, ok := d.metric(`amtriage_kubernetes_informer_synced{resource="` + r + `"}`)
			return ok && v == 1
		})
	}
	am := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	started := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, []amtest.Alert{
		{Labels: map[string]string{"alertname": "HighErrorRate", "service": "api", "namespace": shop, "severity": "warning"},
			Annotations: map[string]string{"summary": "api is failing"}, StartsAt: started},
		{Labels: map[string]string{"alertname": "WorkerBacklog", "service": "worker", "namespace": shop, "severity": "warning"},
			Annotations: map[string]string{"summary": "jobs are piling up"}, StartsAt: started},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "two incidents", func() bool { return len(d.incidents()) == 2 })

	byService := map[string]incidentJSON{}
	for _, inc := range d.incidents() {
		byService[inc.Service] = inc
	}
	api := byService["api"]
	reasons := strings.Join(api.Reasons, "\n")
	if api.Severity != 1 || api.Rule != 1 || !strings.Contains(reasons, "reachable=false [kubernetes] (0/3 pods available)") ||
		!strings.Contains(reasons, "error_ratio=62% [prometheus]") {
		t.Errorf("api: Sev %d rule %d, want Sev 1 from the cluster (0 of 3 available) with 62%% errors measured; reasons:\n%s", api.Severity, api.Rule, reasons)
	}
	// No query for the worker, but none of its pods is available: Sev 1
	// although its alert says "warning".
	if w := byService["worker"]; w.Severity != 1 || w.Rule != 1 || !strings.Contains(strings.Join(w.Reasons, "\n"), "(0/2 pods available)") {
		t.Errorf("worker: Sev %d rule %d, want Sev 1 rule 1 from 0/2 pods available; reasons %v", w.Severity, w.Rule, w.Reasons)
	}

	raw, diags := d.incidentsRaw()
	undo := "kubectl rollout undo deployment/api -n " + shop + " --to-revision=1"
	dg := diags["api"]
	if dg.Category != "config_or_deployment" || dg.Command != undo {
		t.Errorf("api diagnosis %s %q, want config_or_deployment with %q", dg.Category, dg.Command, undo)
	}
	if s := dg.Snapshot; s == nil || s.Deployment == nil || s.Deployment.Desired != 3 || s.Deployment.Available != 0 ||
		len(s.Pods) != 3 || s.Pods[0].Reason != "CrashLoopBackOff" || len(s.Rollouts) != 2 || s.Rollouts[0].Revision != 2 ||
		s.Rollouts[0].Change != "api: shop/api:1.4.2 → shop/api:1.5.0" || len(s.Events) == 0 || s.Events[0].Reason != "BackOff" {
		t.Errorf("api snapshot: %+v", dg.Snapshot)
	}
	if w := diags["worker"]; w.Category != "resources" || !strings.Contains(w.Summary+strings.Join(w.Evidence, " "), "3 Insufficient cpu") {
		t.Errorf("worker diagnosis %s: %s %v, want resources with the scheduler's message", w.Category, w.Summary, w.Evidence)
	}
	t.Logf("GET /api/incidents:\n%s", raw)

	// The sources' work shows in /metrics.
	for _, m := range []string{
		`amtriage_signal_request_duration_seconds_count{outcome="ok",source="prometheus"}`,
		`amtriage_signal_request_duration_seconds_count{outcome="ok",source="kubernetes_logs"}`, // the one log read
		`amtriage_enrichment_duration_seconds_count{stage="diagnosis"}`,
	} {
		if v, ok := d.metric(m); !ok || v < 1 {
			t.Errorf("%s = %v (found %v), want ≥ 1", m, v, ok)
		}
	}

	// The responder's first message and page.
	apiChannel := "incident-" + started.UTC().Format("20060102") + "-api"
	waitFor(t, 20*time.Second, "Sev 1 channels and pages", func() bool {
		return len(e.slack.CreatedChannels()) == 2 && len(e.pd.OpenAlerts()) == 2 && len(e.slack.Messages(apiChannel)) == 2
	})
	msgs := e.slack.Messages(apiChannel) // the declaration, then the incident message
	if !strings.Contains(msgs[0].Text, "Roll back: `"+undo+"`") {
		t.Errorf("the Sev 1 declaration lacks the rollback command:\n%s", msgs[0].Text)
	}
	text := blockTexts(t, msgs[1].Blocks)
	for _, want := range []string{"🩺 *Diagnosis:* config or bad deployment: ", "*Roll back:* `" + undo + "`",
		"desired 3, updated 3, ready 0, available 0", "CrashLoopBackOff, not ready, 5 restarts", "revision 2",
		"*logs of the previous container* `api-7d9f-a/api`: no error lines"} { // no kubelet: the API server has no log to give
		if !strings.Contains(text, want) {
			t.Errorf("Slack message in %s lacks %q:\n%s", apiChannel, want, text)
		}
	}
	t.Logf("Slack messages in #%s:\n%s\n---\n%s", apiChannel, msgs[0].Text, text)
	var pageCmd any
	for _, ev := range e.pd.Events() {
		if ev.Payload != nil && ev.Payload.Source == "api" {
			if dg, ok := ev.Payload.CustomDetails["diagnosis"].(map[string]any); ok {
				pageCmd = dg["command"]
			}
		}
	}
	if pageCmd != undo {
		t.Errorf("api page: custom_details.diagnosis.command = %v, want %q", pageCmd, undo)
	}

}

// blockTexts joins the text of a message's Block Kit blocks.
func blockTexts(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if len(raw) == 0 {
		return ""
	}
	var blocks []struct {
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
	}
	if err := json.Unmarshal(raw, &blocks); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	var b strings.Builder
	for _, bl := range blocks {
		if bl.Text != nil {
			b.WriteString(bl.Text.Text + "\n")
		}
	}
	return b.String()
}

// TestReevaluationFollowsRealPrometheus: an open incident is triaged again
// with fresh measurements. A rise re-pages at the new level; a drop is
// announced but leaves the page open while the alert fires.
func TestReevaluationFollowsRealPrometheus(t *testing.T) {
	amtest.Binary(t)
	exp := promtest.NewExporter(t, "api")
	exp.SetErrorRatio(0.07)
	prom := promtest.Start(t, exp)
	prom.WaitFor(t, ratioQuery("api"), 30*time.Second, promtest.Near(0.07, 1e-6))

	e := newReceiversEnv(t, `
prometheus:
  url: `+prom.URL()+`
incidents:
  reevaluate: {1: 5s, 2: 5s, 3: 5s}
services:
  - name: api
    match: ['service="api"']
    queries:
      error_ratio: '`+ratioQuery("api")+`'
`)
	d := startDaemon(t, e.cfg, freeAddr(t))
	am := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, []amtest.Alert{{Labels: map[string]string{"alertname": "HighErrorRate", "service": "api", "severity": "warning"},
		Annotations: map[string]string{"summary": "api errors"}, StartsAt: time.Now().Add(-time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	severityIs := func(want int) func() bool {
		return func() bool { incs := d.incidents(); return len(incs) == 1 && incs[0].Severity == want }
	}
	waitFor(t, 20*time.Second, "Sev 3 from 7% errors", severityIs(3))
	if inc := d.incidents()[0]; inc.Rule != 5 || len(e.pd.Events()) != 0 {
		t.Fatalf("opened: rule %d, %d PagerDuty events; want rule 5 and no page", inc.Rule, len(e.pd.Events()))
	}
	id := d.incidents()[0].ID

	exp.SetErrorRatio(0.62)
	waitFor(t, 40*time.Second, "re-evaluated to Sev 1", severityIs(1))
	waitFor(t, 20*time.Second, "paged at critical", func() bool {
		trs := e.pd.Triggers(id)
		return len(trs) == 1 && trs[0].Payload.Severity == "critical"
	})

	exp.SetErrorRatio(0.07)
	waitFor(t, 40*time.Second, "re-evaluated back to Sev 3", severityIs(3))
	waitFor(t, 20*time.Second, "the drop announced in Slack", func() bool {
		for _, c := range e.slack.Calls() {
			for _, s := range c.Strings {
				if strings.Contains(s, "Severity lowered") {
					return true
				}
			}
		}
		return false
	})
	if n := len(e.pd.Resolves(id)); n != 0 || len(e.pd.OpenAlerts()) != 1 {
		t.Errorf("after the drop: %d resolves, %d open pages; a drop must not un-page while the alert fires", n, len(e.pd.OpenAlerts()))
	}
	lines := eventLines(t, d.stdout.String(), "incident severity changed")
	if len(lines) < 2 {
		t.Fatalf("%d severity-changed lines, want the rise and the drop", len(lines))
	}
	t.Logf("severity changes: %v → %v, then %v → %v", lines[0]["previous_severity"], lines[0]["severity"], lines[1]["previous_severity"], lines[1]["severity"])
}

// TestTriageOnRealWorldSignals: a real Prometheus measures two services.
// One sits at a steady 0.2% of errors: a disk warning on it is Sev 4 (rule
// 12), never a Sev 2 page for "staying broken". The other's error-ratio query
// returns nothing while its health probe answers 200: its critical alert is
// Sev 2 from the label (rule 13) and pages, instead of Sev 4 held until
// business hours, and the reasons say what could not be measured.
func TestTriageOnRealWorldSignals(t *testing.T) {
	amtest.Binary(t)
	noise := promtest.NewExporter(t, "noise")
	noise.SetErrorRatio(0.002)
	prom := promtest.Start(t, noise)
	prom.WaitFor(t, ratioQuery("noise"), 30*time.Second, promtest.Near(0.002, 1e-6))
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(health.Close)

	e := newReceiversEnv(t, `
prometheus:
  url: `+prom.URL()+`
  trend_window: 1m
services:
  - name: noise
    match: ['service="noise"']
    queries:
      error_ratio: '`+ratioQuery("noise")+`'
  - name: checkout
    match: ['service="checkout"']
    health_url: `+health.URL+`
    queries:
      error_ratio: '`+ratioQuery("checkout")+`'
`)
	// The trend needs 3 points of its 1m window (step 3s).
	prom.WaitForSeries(t, `count_over_time((`+ratioQuery("noise")+`)[1m:3s]) >= 4`, 30*time.Second)
	d := startDaemon(t, e.cfg, freeAddr(t))
	am := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, []amtest.Alert{
		{Labels: map[string]string{"alertname": "DiskSpaceLow", "service": "noise", "severity": "warning"}, StartsAt: time.Now().Add(-time.Minute)},
		{Labels: map[string]string{"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"}, StartsAt: time.Now().Add(-time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "two incidents", func() bool { return len(d.incidents()) == 2 })
	byService := map[string]incidentJSON{}
	for _, inc := range d.incidents() {
		byService[inc.Service] = inc
	}
	if inc := byService["noise"]; inc.Severity != 4 || inc.Rule != 12 {
		t.Errorf("noise at 0.2%%: Sev %d rule %d, want Sev 4 rule 12; reasons %q", inc.Severity, inc.Rule, inc.Reasons)
	}
	inc := byService["checkout"]
	if inc.Severity != 2 || inc.Rule != 13 {
		t.Fatalf("checkout, query empty and probe 200: Sev %d rule %d, want Sev 2 rule 13; reasons %q", inc.Severity, inc.Rule, inc.Reasons)
	}
	all := strings.Join(inc.Reasons, "\n")
	for _, want := range []string{"error ratio unknown, so Q2 is unanswered", "reachable=true [probe]", "error_ratio unknown: prometheus: query error_ratio returned no data"} {
		if !strings.Contains(all, want) {
			t.Errorf("checkout reasons lack %q:\n%s", want, all)
		}
	}
	waitFor(t, 20*time.Second, "checkout paged at error", func() bool {
		trs := e.pd.Triggers(inc.ID)
		return len(trs) == 1 && trs[0].Payload.Severity == "error"
	})
	if trs := e.pd.Triggers(byService["noise"].ID); len(trs) != 0 {
		t.Errorf("noise paged %d times, want never", len(trs))
	}
}
