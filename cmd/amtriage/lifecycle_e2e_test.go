package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/amtriage/amtriage/internal/amtest"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	"github.com/amtriage/amtriage/internal/kubetest"
	"github.com/amtriage/amtriage/internal/promtest"
)

type timelineJSON struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Recurrences  int    `json:"recurrences"`
	Verification string `json:"verification"`
	Closure      string `json:"closure"`
	Timeline     []struct {
		At   time.Time `json:"at"`
		Kind string    `json:"kind"`
		Text string    `json:"text"`
	} `json:"timeline"`
}

// incidentByState is the one incident in state, if there is exactly one.
func (d *daemon) incidentByState(t *testing.T, state string) (timelineJSON, bool) {
	t.Helper()
	var list struct {
		Incidents []timelineJSON `json:"incidents"`
	}
	if !d.getJSON(t, "/api/incidents?state="+state, &list) || len(list.Incidents) != 1 {
		return timelineJSON{}, false
	}
	var inc timelineJSON
	return inc, d.getJSON(t, "/api/incidents/"+list.Incidents[0].ID, &inc)
}

func (d *daemon) getJSON(t *testing.T, path string, v any) bool {
	t.Helper()
	resp, err := d.get(path)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
	return true
}

// ageWarnings moves the namespace's events 5 minutes back: the crash loop
// they tell of is over by the time recovery is verified.
func ageWarnings(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	evs, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := metav1.NewTime(time.Now().Add(-5 * time.Minute))
	for i := range evs.Items {
		e := &evs.Items[i]
		e.FirstTimestamp, e.LastTimestamp = old, old
		if _, err := c.CoreV1().Events(ns).Update(ctx, e, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// rollBack does what `kubectl rollout undo` and the controllers and
// kubelets after it would: revision 1's template becomes revision 3, its
// three pods Running and Ready, the crashing pods of revision 2 gone.
func rollBack(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	rs, err := c.AppsV1().ReplicaSets(ns).Get(ctx, "api-5c4b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs.Annotations["deployment.kubernetes.io/revision"] = "3"
	if rs, err = c.AppsV1().ReplicaSets(ns).Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		name := fmt.Sprintf("api-7d9f-%c", 'a'+i)
		if err := c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
			t.Fatal(err)
		}
		name = fmt.Sprintf("api-5c4b-%c", 'a'+i)
		pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "api", "pod-template-hash": "5c4b"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr(true)}}},
			Spec: podTemplate(nil, "shop/api:1.4.2").Spec,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "api", Image: "shop/api:1.4.2", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
		if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dep, err := c.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep.Annotations["deployment.kubernetes.io/revision"] = "3"
	dep.Spec.Template = podTemplate(map[string]string{"app": "api"}, "shop/api:1.4.2")
	if dep, err = c.AppsV1().Deployments(ns).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep.Status.ObservedGeneration, dep.Status.ReadyReplicas, dep.Status.AvailableReplicas, dep.Status.UnavailableReplicas = dep.Generation, 3, 3, 0
	if _, err := c.AppsV1().Deployments(ns).UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestIncidentLifecycleEndToEnd walks one incident through every state
// with the real binary, Alertmanager, Prometheus and kube-apiserver: a Sev 1
// from a crash-looping rollout; its alert resolves with the pods still
// crashing (verifying); a rollback makes them Ready and errors stop
// (monitoring, PagerDuty resolved, "Fix Applied: rollback to revision 1");
// it fires again (the same incident reopens, PagerDuty triggered again with
// the same dedup key); it resolves, is verified, and monitor_for passes
// (closed). Its timeline lists every step with UTC times.
func TestIncidentLifecycleEndToEnd(t *testing.T) {
	amtest.Binary(t)
	exp := promtest.NewExporter(t, "api")
	exp.SetErrorRatio(0.62)
	prom := promtest.Start(t, exp)
	kube := kubetest.Start(t)
	shop := kube.NewNamespace(t, "shop")
	crashLoopingDeployment(t, kube.Client, shop)
	prom.WaitFor(t, ratioQuery("api"), 30*time.Second, promtest.Near(0.62, 1e-6))
	requests := `sum(rate(http_requests_total{service="api"}[5s]))`

	e := newReceiversEnv(t, `
prometheus:
  url: `+prom.URL()+`
  timeout: 2s
kubernetes:
  enabled: true
  kubeconfig: `+kube.Kubeconfig+`
incidents:
  verify_every: 1s
  verify_timeout: 10m
  monitor_for: 20s
services:
  - name: api
    match: ['service="api"']
    namespace: `+shop+`
    deployment: api
    queries:
      error_ratio: '`+ratioQuery("api")+`'
      requests: '`+requests+`'
`)
	d := startDaemon(t, e.cfg, freeAddr(t))
	for _, r := range []string{"pods", "deployments", "replicasets", "events"} {
		waitFor(t, 30*time.Second, r+" informer synced", func() bool {
			v, ok := d.metric(`amtriage_kubernetes_informer_synced{resource="` + r + `"}`)
			return ok && v == 1
		})
	}
	am := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	labels := map[string]string{"alertname": "HighErrorRate", "service": "api", "namespace": shop, "severity": "critical"}
	alert := func(start, end time.Time) {
		t.Helper()
		if err := am.PostAlerts(ctx, []amtest.Alert{{Labels: labels, Annotations: map[string]string{"summary": "api is failing"}, StartsAt: start, EndsAt: end}}); err != nil {
			t.Fatal(err)
		}
	}

	// Sev 1, paged.
	first := time.Now().Add(-time.Minute).Truncate(time.Second)
	alert(first, time.Time{})
	var open timelineJSON
	waitFor(t, 30*time.Second, "the Sev 1 open and paged", func() bool {
		var ok bool
		open, ok = d.incidentByState(t, "open")
		return ok && len(e.pd.OpenAlerts()) == 1
	})
	id := open.ID
	ageWarnings(t, kube.Client, shop) // only new warnings would fail verification
	// Some failing traffic measured during the incident, for its impact.
	prom.WaitFor(t, `count_over_time(`+requests+`[15s:1s])`, 40*time.Second, func(v float64) bool { return v >= 14 })

	// The alert resolves with the pods still crashing: verifying, announced.
	alert(first, time.Now().Add(-time.Second))
	var v timelineJSON
	waitFor(t, 30*time.Second, "verifying, not verified", func() bool {
		var ok bool
		v, ok = d.incidentByState(t, "verifying")
		return ok && strings.HasPrefix(v.Verification, "alerts resolved, recovery not verified: 0/3 pods ready")
	})
	if v.ID != id || len(e.pd.OpenAlerts()) != 1 {
		t.Fatalf("verifying %s (want %s), PagerDuty open alerts %d (want the page standing)", v.ID, id, len(e.pd.OpenAlerts()))
	}

	// Rolled back, pods Ready, errors gone: monitoring, PagerDuty resolved.
	rollBack(t, kube.Client, shop)
	exp.SetErrorRatio(0)
	var m timelineJSON
	waitFor(t, 60*time.Second, "monitoring, PagerDuty resolved", func() bool {
		var ok bool
		m, ok = d.incidentByState(t, "monitoring")
		a, _ := e.pd.Alert(id)
		return ok && a.Status == fakepd.Resolved
	})
	for _, line := range []string{"✅ INCIDENT RESOLVED\n", "\nFix Applied: rollback to revision 1 at ", "\nImpact: ~",
		"\nStatus: resolved, verified: pods: passed (3/3 pods ready)", "\nMonitoring: Continuing for 20s", "\nPost-mortem: due "} {
		if !strings.Contains(m.Closure, line) {
			t.Errorf("closure lacks %q:\n%s", line, m.Closure)
		}
	}
	t.Logf("closure message:\n%s", m.Closure)

	// It fires again: the same incident reopens, paged again.
	exp.SetErrorRatio(0.62)
	prom.WaitFor(t, ratioQuery("api"), 30*time.Second, promtest.Near(0.62, 1e-6))
	second := time.Now().Truncate(time.Second)
	alert(second, time.Time{})
	waitFor(t, 30*time.Second, "reopened and paged again", func() bool {
		r, ok := d.incidentByState(t, "open")
		a, _ := e.pd.Alert(id)
		return ok && r.ID == id && r.Recurrences == 1 && a.Status == fakepd.Triggered
	})

	// Resolves, verified at once, monitor_for passes: closed.
	exp.SetErrorRatio(0)
	prom.WaitFor(t, ratioQuery("api"), 30*time.Second, promtest.Near(0, 1e-6))
	alert(second, time.Now().Add(-time.Second))
	var closed timelineJSON
	waitFor(t, 60*time.Second, "closed", func() bool {
		var ok bool
		closed, ok = d.incidentByState(t, "closed")
		return ok
	})
	a, _ := e.pd.Alert(id)
	if closed.ID != id || closed.Recurrences != 1 || a.Status != fakepd.Resolved {
		t.Errorf("closed %s recurrences %d, PagerDuty %s", closed.ID, closed.Recurrences, a.Status)
	}
	var kinds []string
	for _, en := range closed.Timeline {
		if en.At.IsZero() || en.At.Location() != time.UTC {
			t.Errorf("timeline entry %s at %v, want a UTC time", en.Kind, en.At)
		}
		kinds = slices.AppendSeq(kinds, slices.Values([]string{en.Kind}))
		t.Logf("%s %-12s %s", en.At.Format(time.RFC3339), en.Kind, en.Text)
	}
	for _, want := range []string{"detected", "declared", "diagnosis", "update", "resolved", "check", "verification", "monitoring", "reopened", "closed"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("timeline lacks %q: %q", want, kinds)
		}
	}
	resp, err := d.get("/api/incidents/" + id + "/postmortem")
	if err != nil {
		t.Fatal(err)
	}
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"# Post-mortem: INCIDENT: api", "— detected: ", "— verification: alerts resolved, recovery not verified: 0/3 pods ready",
		"— reopened: ", "— closed", "## Root cause\n", "## Post-incident checklist\n"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("post-mortem lacks %q:\n%s", want, md)
		}
	}
	if n := len(e.pd.OpenAlerts()); n != 0 {
		t.Errorf("PagerDuty open alerts %d at the end", n)
	}
}
