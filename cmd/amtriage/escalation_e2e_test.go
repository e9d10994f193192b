package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	"github.com/amtriage/amtriage/internal/kubetest"
)

const pdEscalationKey = "e2eESCALATIONkey0123456789abcdef" // 32 characters

// A Sev 1 whose cause cannot be identified (no cluster configured) is
// escalated escalation.after after its declaration: one PagerDuty trigger on
// the escalation key (dedup key <id>/escalation) and the runbook's message
// in the Sev 1 channel; a SIGKILL and restart do not escalate it again; the
// escalation page resolves with the incident.
func TestSev1WithoutCauseEscalatesOnceAndResolvesWithTheIncident(t *testing.T) {
	t.Setenv("AMTRIAGE_PAGERDUTY_ESCALATION_ROUTING_KEY", pdEscalationKey)
	e := newReceiversEnv(t, "escalation:\n  after: 2s\n")
	addr := freeAddr(t)
	d := startDaemon(t, e.cfg, addr)
	postOne(t, d, "api", "62%")
	waitFor(t, 10*time.Second, "the Sev 1 paged", func() bool { return len(e.pd.OpenAlerts()) == 1 })
	id := e.pd.OpenAlerts()[0].DedupKey
	esc := id + "/escalation"
	waitFor(t, 20*time.Second, "the escalation paged", func() bool { return len(e.pd.Triggers(esc)) == 1 })
	if tr := e.pd.Triggers(esc)[0]; tr.RoutingKey != pdEscalationKey || tr.Payload.Severity != "critical" ||
		!strings.HasPrefix(tr.Payload.Summary, "ESCALATION: Sev 1 api, cause not identified after ") {
		t.Errorf("escalation trigger: %+v %+v", tr, tr.Payload)
	}
	waitFor(t, 10*time.Second, "the escalation message in Slack", func() bool {
		for _, m := range e.slack.AllMessages() {
			if strings.Contains(m.Text, "*ESCALATION*") && strings.Contains(m.Text, "*Why stuck:*") && m.ThreadTS != "" {
				return true
			}
		}
		return false
	})
	if lines := eventLines(t, d.stdout.String(), "incident escalated"); len(lines) != 1 {
		t.Errorf("%d 'incident escalated' log lines, want 1", len(lines))
	}

	if err := d.kill(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: clean exit")
	}
	d = startDaemon(t, e.cfg, addr)
	waitProcessed(t, d)
	time.Sleep(3 * time.Second) // three sweeps (escalation.after/4, at least 1s) after the restart
	// Escalated once: one escalation alert. The trigger itself may arrive
	// twice (delivery is at least once: a SIGKILL can land between
	// PagerDuty's 202 and the acknowledgement's commit), which PagerDuty
	// folds by its dedup key; a second escalation decided anew would carry
	// another trigger, with another summary time.
	open := 0
	for _, a := range e.pd.OpenAlerts() {
		if a.DedupKey == esc {
			open++
		}
	}
	summaries := map[string]bool{}
	for _, tr := range e.pd.Triggers(esc) {
		summaries[tr.Payload.Summary] = true
	}
	if open != 1 || len(summaries) != 1 {
		t.Fatalf("after a restart: %d escalation alerts, %d distinct escalation triggers %v; want one escalation", open, len(summaries), summaries)
	}

	body := []byte(`{"version":"4","status":"resolved","groupKey":"{}:{service=\"api\"}","truncatedAlerts":0,
"alerts":[{"status":"resolved","labels":{"alertname":"Errors","service":"api"},"annotations":{"error_ratio":"62%"},
"startsAt":"2026-11-23T03:00:00Z","endsAt":"2026-11-23T03:20:00Z","fingerprint":"api01"}]}`)
	if code, err := post(context.Background(), d.url("/webhook"), "", body); err != nil || code != 200 {
		t.Fatalf("post resolve: %d %v", code, err)
	}
	waitFor(t, 20*time.Second, "both pages resolved", func() bool {
		a, ok1 := e.pd.Alert(id)
		b, ok2 := e.pd.Alert(esc)
		return ok1 && ok2 && a.Status == fakepd.Resolved && b.Status == fakepd.Resolved
	})
	if n := len(e.pd.Triggers(esc)); n != 1 {
		t.Errorf("%d escalation triggers in all, want 1", n)
	}
}

// Without an escalation routing key the escalation is a Slack message only,
// and its log line says PagerDuty escalation is not configured.
func TestEscalationWithoutKeyIsSlackOnly(t *testing.T) {
	e := newReceiversEnv(t, "escalation:\n  after: 1s\n")
	d := startDaemon(t, e.cfg, freeAddr(t))
	postOne(t, d, "api", "62%")
	waitFor(t, 20*time.Second, "the escalation logged", func() bool {
		return len(eventLines(t, d.stdout.String(), "incident escalated")) == 1
	})
	line := eventLines(t, d.stdout.String(), "incident escalated")[0]
	if route, _ := line["route"].(map[string]any); route["pagerduty"] != "none (PagerDuty escalation is not configured)" {
		t.Errorf("route: %v", line["route"])
	}
	waitFor(t, 10*time.Second, "the escalation message in Slack", func() bool {
		for _, m := range e.slack.AllMessages() {
			if strings.Contains(m.Text, "*ESCALATION*") {
				return true
			}
		}
		return false
	})
	for _, ev := range e.pd.Events() {
		if strings.HasSuffix(ev.DedupKey, "/escalation") {
			t.Errorf("sent %s %s without an escalation key", ev.Action, ev.DedupKey)
		}
	}
}

// A Sev 1 whose quick diagnosis names the cause — pods in CrashLoopBackOff
// after a rollout, read from a real kube-apiserver — is not escalated; its
// post-mortem names the cause and the rollback.
func TestSev1WithIdentifiedCauseIsNotEscalated(t *testing.T) {
	kube := kubetest.Start(t)
	shop := kube.NewNamespace(t, "shop")
	crashLoopingDeployment(t, kube.Client, shop)
	t.Setenv("AMTRIAGE_PAGERDUTY_ESCALATION_ROUTING_KEY", pdEscalationKey)
	e := newReceiversEnv(t, `
escalation:
  after: 1s
kubernetes:
  enabled: true
  kubeconfig: `+kube.Kubeconfig+`
services:
  - name: api
    match: ['service="api"']
    namespace: `+shop+`
    deployment: api
`)
	d := startDaemon(t, e.cfg, freeAddr(t))
	for _, r := range []string{"pods", "deployments", "replicasets", "events"} {
		waitFor(t, 30*time.Second, r+" informer synced", func() bool {
			v, ok := d.metric(`amtriage_kubernetes_informer_synced{resource="` + r + `"}`)
			return ok && v == 1
		})
	}
	postOne(t, d, "api", "62%")
	waitFor(t, 10*time.Second, "the Sev 1 paged", func() bool { return len(e.pd.OpenAlerts()) == 1 })
	id := e.pd.OpenAlerts()[0].DedupKey
	if _, diags := d.incidentsRaw(); diags["api"].Category != "config_or_deployment" {
		t.Fatalf("diagnosis %+v, want config_or_deployment", diags["api"])
	}
	time.Sleep(4 * time.Second) // four sweeps past escalation.after
	if n := len(e.pd.Triggers(id + "/escalation")); n != 0 {
		t.Errorf("%d escalation triggers for a Sev 1 whose cause is identified", n)
	}
	if lines := eventLines(t, d.stdout.String(), "incident escalated"); len(lines) != 0 {
		t.Errorf("escalated: %v", lines)
	}
	code, doc, stderr := runCLI(t, "", "postmortem", "--url", d.url(""), id)
	if code != 0 {
		t.Fatalf("postmortem: exit %d %s", code, stderr)
	}
	for _, want := range []string{"(config\\_or\\_deployment)", "`kubectl rollout undo deployment/api -n " + shop + " --to-revision=1`"} {
		if !strings.Contains(doc, want) {
			t.Errorf("post-mortem lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "escalated") {
		t.Errorf("post-mortem says escalated:\n%s", doc)
	}
}
