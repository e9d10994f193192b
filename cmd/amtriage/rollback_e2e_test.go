package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/amtriage/amtriage/actions/rollback"
	"github.com/amtriage/amtriage/actions/rollback/rollbacktest"
	"github.com/amtriage/amtriage/actions/slackin"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
	"github.com/amtriage/amtriage/internal/kubetest"
)

const (
	rbV1 = "registry.example/shop/app:1.4.2"
	rbV2 = "registry.example/shop/app:1.5.0"
	rbV3 = "registry.example/shop/app:1.6.0"
)

// TestRollBackFromSlackEndToEnd: the binary diagnoses a crash loop after a
// rollout on a real kube-apiserver (Diagnosis.Rollback from 2 to 1); a
// signed Roll back click by an allowed user sets the Deployment back to
// revision 1's template, once, and the timeline says who. Refused, with
// nothing patched: a user not in allowed_users and a daemon with rollback
// disabled (both answered to the user alone on the click's response_url),
// and a Deployment that moved on to revision 3 since the diagnosis (the
// timeline says why).
func TestRollBackFromSlackEndToEnd(t *testing.T) {
	kube := kubetest.Start(t)
	shop := kube.NewNamespace(t, "shop")
	for _, svc := range []string{"api", "web"} {
		crashLoopingRollout(t, kube.Client, shop, svc)
	}
	e := newReceiversEnv(t, "")
	hooks := newSlackHooks(t, e.slack)
	hooks.setEnv(t)
	writeFile(t, filepath.Join(e.dir, "slack-signing"), fakeslack.DefaultSigningSecret+"\n")
	cfg := writeFile(t, filepath.Join(e.dir, "rollback.yml"), readFile(t, e.cfg)+`
  signing_secret_file: slack-signing
kubernetes:
  enabled: true
  kubeconfig: `+kube.Kubeconfig+`
incidents:
  reevaluate: {1: 0s, 2: 0s, 3: 0s, 4: 0s} # the diagnosis stays the one the clicks name
actions:
  rollback:
    enabled: true
    allowed_users: [U0ANA]
services:
  - name: api
    match: ['service="api"']
    namespace: `+shop+`
    deployment: api
  - name: web
    match: ['service="web"']
    namespace: `+shop+`
    deployment: web
`)
	d := startDaemon(t, cfg, freeAddr(t))
	for _, r := range []string{"pods", "deployments", "replicasets", "events"} {
		waitFor(t, 30*time.Second, r+" informer synced", func() bool {
			v, ok := d.metric(`amtriage_kubernetes_informer_synced{resource="` + r + `"}`)
			return ok && v == 1
		})
	}
	if !strings.Contains(d.stderr.String(), `"receiver":"kubernetes"`) {
		t.Errorf("the kubernetes receiver was not enabled:\n%s", tail(d.stderr.String(), 4000))
	}
	ids := map[string]string{}
	for _, svc := range []string{"api", "web"} {
		postOne(t, d, svc, "62%")
		waitFor(t, 30*time.Second, svc+" diagnosed with a rollback from 2 to 1", func() bool {
			inc, ok := d.incidentOf(t, svc)
			ids[svc] = inc.ID
			r := inc.Diagnosis.Rollback
			return ok && r != nil && *r == rollbackJSON{Namespace: shop, Deployment: svc, From: 2, To: 1}
		})
	}
	ctx := context.Background()
	n := 0
	click := func(user, svc string) (fakeslack.Sent, string) {
		t.Helper()
		n++
		value, err := slackin.EncodeValue(slackin.ActRollback, slackin.Value{Incident: ids[svc],
			Rollback: &slackin.Rollback{Namespace: shop, Deployment: svc, From: 2, To: 1}})
		if err != nil {
			t.Fatal(err)
		}
		hook := hooks.responseURL()
		sent, err := e.slack.SendInteraction(ctx, d.url("/slack/interactions"), fakeslack.InteractionPayload{
			UserID: user, UserName: strings.ToLower(user), MessageTS: "1700000000.000100", ActionID: string(slackin.ActRollback), Value: value,
			ActionTS: fmt.Sprintf("1700000%03d.000100", n), ResponseURL: hook})
		if err != nil || sent.Status != http.StatusOK {
			t.Fatalf("click by %s: %d %v %s", user, sent.Status, err, sent.Response)
		}
		return sent, hook
	}

	// Not allowed: answered to Bob alone, nothing patched.
	_, hook := click("U0BOB", "api")
	waitReply(t, e.slack, hook, "not allowed to roll back")
	if img := deployedImage(t, kube.Client, shop, "api"); img != rbV2 {
		t.Errorf("after a refused click api runs %s, want %s", img, rbV2)
	}

	// Allowed: rolled back to revision 1's template, once, Ana named.
	sent, _ := click("U0ANA", "api")
	var done rbIncident
	waitFor(t, 30*time.Second, "api rolled back on the timeline", func() bool {
		done, _ = d.incidentOf(t, "api")
		return done.has("rolled_back", "by <@U0ANA>")
	})
	for _, want := range []struct{ kind, text string }{
		{"rollback", "rollback of deployment " + shop + "/api from revision 2 to 1 requested by <@U0ANA>"},
		{"rolled_back", "deployment " + shop + "/api rolled back from revision 2 (" + rbV2 + ") to revision 1 (" + rbV1 + "), by <@U0ANA>"},
	} {
		if !done.has(want.kind, want.text) {
			t.Errorf("timeline lacks %s %q: %+v", want.kind, want.text, done.Timeline)
		}
	}
	dep := deployment(t, kube.Client, shop, "api")
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != rbV1 {
		t.Errorf("api runs %s after the rollback, want %s", img, rbV1)
	}
	// The cluster's own history names who did it too (kubectl rollout history).
	if cause := dep.Annotations["kubernetes.io/change-cause"]; !strings.Contains(cause, "amtriage") || !strings.Contains(cause, "U0ANA") && !strings.Contains(cause, "ana") {
		t.Errorf("change-cause %q, want amtriage's naming the Slack user", cause)
	}
	if again, err := e.slack.Resend(ctx, d.url("/slack/interactions"), sent); err != nil || again.Status != http.StatusOK {
		t.Fatalf("Slack's retry of the click: %d %v", again.Status, err)
	}
	postOne(t, d, "checkout", "7%") // the inbox flows on behind the retry
	waitFor(t, 20*time.Second, "the next incident", func() bool { _, ok := d.incidentOf(t, "checkout"); return ok })
	time.Sleep(time.Second) // the outbox's delivery of a second request, were there one
	if after := deployment(t, kube.Client, shop, "api"); after.ResourceVersion != dep.ResourceVersion {
		t.Errorf("Slack's retry of the click patched the Deployment again (resourceVersion %s -> %s)", dep.ResourceVersion, after.ResourceVersion)
	}
	if got, _ := d.incidentOf(t, "api"); got.count("rollback") != 1 || got.count("rolled_back") != 1 {
		t.Errorf("timeline after Slack's retry: %+v, want one request and one rollback", got.Timeline)
	}

	// Moved on since the diagnosis: refused, nothing patched, the timeline
	// says why.
	bumpRevision(t, kube.Client, shop, "web")
	before := deployment(t, kube.Client, shop, "web")
	_, hook = click("U0ANA", "web")
	waitFor(t, 30*time.Second, "web's rollback refused on the timeline", func() bool {
		inc, _ := d.incidentOf(t, "web")
		return inc.has("failed", "deployment "+shop+"/web is at revision 3, not 2 as the diagnosis saw: refused; look again before rolling back")
	})
	waitReply(t, e.slack, hook, "is at revision 3, not 2") // and Ana is told, alone
	if after := deployment(t, kube.Client, shop, "web"); after.ResourceVersion != before.ResourceVersion || after.Spec.Template.Spec.Containers[0].Image != rbV3 {
		t.Errorf("a refused rollback changed web: resourceVersion %s -> %s, image %s", before.ResourceVersion, after.ResourceVersion, after.Spec.Template.Spec.Containers[0].Image)
	}

	// Rollback disabled: answered at once, nothing patched.
	off := newReceiversEnv(t, "")
	offHooks := newSlackHooks(t, off.slack)
	offHooks.setEnv(t)
	writeFile(t, filepath.Join(off.dir, "slack-signing"), fakeslack.DefaultSigningSecret+"\n")
	offCfg := writeFile(t, filepath.Join(off.dir, "off.yml"), readFile(t, off.cfg)+"  signing_secret_file: slack-signing\n")
	od := startDaemon(t, offCfg, freeAddr(t))
	if strings.Contains(od.stderr.String(), `"receiver":"kubernetes"`) {
		t.Errorf("the kubernetes receiver enabled without actions.rollback.enabled")
	}
	value, _ := slackin.EncodeValue(slackin.ActRollback, slackin.Value{Incident: ids["web"],
		Rollback: &slackin.Rollback{Namespace: shop, Deployment: "api", From: 2, To: 1}})
	hook = offHooks.responseURL()
	if s, err := off.slack.SendInteraction(ctx, od.url("/slack/interactions"), fakeslack.InteractionPayload{UserID: "U0ANA",
		MessageTS: "1700000000.000100", ActionID: string(slackin.ActRollback), Value: value, ResponseURL: hook}); err != nil || s.Status != http.StatusOK {
		t.Fatalf("click on the disabled daemon: %d %v", s.Status, err)
	}
	waitReply(t, off.slack, hook, "Roll back is not enabled here")
	if img := deployedImage(t, kube.Client, shop, "api"); img != rbV1 {
		t.Errorf("api runs %s after a click on a daemon with rollback disabled, want %s untouched", img, rbV1)
	}
}

// crashLoopingRollout: Deployment name at revision 2 (rbV2), made just
// now, its three pods in CrashLoopBackOff; revision 1 (rbV1) before it.
func crashLoopingRollout(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx := context.Background()
	_, rss := rollbacktest.Deploy(t, c, ns, name, rbV1, rbV2)
	rs := rss[1]
	for i := range 3 {
		pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%c", rs.Name, 'a'+i), Labels: rs.Spec.Template.Labels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
			Spec: rs.Spec.Template.Spec,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: rbV2, RestartCount: 5,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container=app"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}}}}}
		if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// bumpRevision rolls name out to a revision 3 (rbV3), as the deployment
// controller records it.
func bumpRevision(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	d := deployment(t, c, ns, name)
	d.Spec.Template.Spec.Containers[0].Image = rbV3
	d.Annotations[rollback.RevisionAnnotation] = "3"
	d, err := c.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rollbacktest.ReplicaSet(t, c, d, 3, rbV3, 3)
}

func deployment(t *testing.T, c kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func deployedImage(t *testing.T, c kubernetes.Interface, ns, name string) string {
	t.Helper()
	return deployment(t, c, ns, name).Spec.Template.Spec.Containers[0].Image
}

type rollbackJSON struct {
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
	From       int64  `json:"from"`
	To         int64  `json:"to"`
}

type rbIncident struct {
	ID        string `json:"id"`
	Service   string `json:"service"`
	Diagnosis struct {
		Rollback *rollbackJSON `json:"rollback"`
	} `json:"diagnosis"`
	Timeline []struct {
		Kind string `json:"kind"`
		Text string `json:"text"`
	} `json:"timeline"`
}

// has reports whether a timeline entry of kind says text.
func (inc rbIncident) has(kind, text string) bool {
	for _, e := range inc.Timeline {
		if e.Kind == kind && strings.Contains(e.Text, text) {
			return true
		}
	}
	return false
}

func (inc rbIncident) count(kind string) int {
	n := 0
	for _, e := range inc.Timeline {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// incidentOf is the open incident of service, with its timeline.
func (d *daemon) incidentOf(t *testing.T, service string) (rbIncident, bool) {
	t.Helper()
	var list struct {
		Incidents []rbIncident `json:"incidents"`
	}
	if !d.getJSON(t, "/api/incidents", &list) {
		return rbIncident{}, false
	}
	for _, inc := range list.Incidents {
		if inc.Service == service {
			var detail rbIncident
			return detail, d.getJSON(t, "/api/incidents/"+url.PathEscape(inc.ID), &detail)
		}
	}
	return rbIncident{}, false
}

// waitReply waits for an ephemeral answer saying text on response_url hook.
func waitReply(t *testing.T, s *fakeslack.Server, hook, text string) {
	t.Helper()
	u, err := url.Parse(hook)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the answer "+text, func() bool {
		for _, r := range s.HookReplies() {
			if r.Hook == u.Path && r.ResponseType == "ephemeral" && strings.Contains(r.Text, text) {
				return true
			}
		}
		return false
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
