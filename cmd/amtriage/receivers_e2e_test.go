package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/amtest"
	fakegrafana "github.com/amtriage/amtriage/internal/fakes/grafana"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
)

// receiversEnv is amtriage configured with every receiver pointed at local
// servers that check requests as the real APIs do.
type receiversEnv struct {
	dir     string
	cfg     string
	slack   *fakeslack.Server
	pd      *fakepd.Server
	grafana *fakegrafana.Server
}

const (
	slackToken = "xoxb-e2e-5f1c9a7d3b"
	pdKey      = "e2ePDroutingKey0123456789abcdef0" // 32 characters
	grafToken  = "glsa_e2e_77aa19c0"
)

func newReceiversEnv(t *testing.T, extra string) *receiversEnv {
	t.Helper()
	e := &receiversEnv{dir: t.TempDir(), slack: fakeslack.New(slackToken), pd: fakepd.New(), grafana: fakegrafana.New(grafToken)}
	t.Cleanup(e.slack.Close)
	t.Cleanup(e.pd.Close)
	t.Cleanup(e.grafana.Close)
	writeFile(t, filepath.Join(e.dir, "grafana-token"), grafToken+"\n")
	writeFile(t, filepath.Join(e.dir, "slack-token"), slackToken+"\n")
	writeFile(t, filepath.Join(e.dir, "pd-key"), pdKey+"\n")
	e.cfg = writeFile(t, filepath.Join(e.dir, "amtriage.yml"), `
store:
  path: `+filepath.Join(e.dir, "data")+`
pagerduty:
  url: `+e.pd.URL+`
  routing_key_file: pd-key
grafana:
  url: `+e.grafana.URL+`
  token_file: grafana-token
slack:
  api_url: `+e.slack.URL+`
  token_file: slack-token
  channel: "#alerts"
  incidents_channel: "#incidents"
  oncall_users: [U0123456]
  business_hours: {timezone: UTC, start: "00:00", end: "23:59", days: [mon, tue, wed, thu, fri, sat, sun]}
`+extra)
	return e
}

// TestRealAlertmanagerToReceivers: a real Alertmanager delivers to the
// amtriage binary, which notifies the local Slack API: routing per severity,
// the Sev 1 channel, escaped alert text, and resolve updating the message.
func TestRealAlertmanagerToReceivers(t *testing.T) {
	amtest.Binary(t)
	e := newReceiversEnv(t, "")
	d := startDaemon(t, e.cfg, freeAddr(t))
	am := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})

	started := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	api := []amtest.Alert{{Labels: map[string]string{"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
		Annotations: map[string]string{"error_ratio": "62%", "summary": "api is failing"}, StartsAt: started}}
	others := []amtest.Alert{
		{Labels: map[string]string{"alertname": "SlowCheckout", "service": "checkout", "severity": "warning"},
			Annotations: map[string]string{"error_ratio": "7%"}, StartsAt: started},
		{Labels: map[string]string{"alertname": "Evil", "service": "inject", "severity": "warning", "team": "<!channel> @here"},
			Annotations: map[string]string{"summary": "<!here> click <http://evil.example|here>", "error_ratio": "6%"}, StartsAt: started},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, append(append([]amtest.Alert{}, api...), others...)); err != nil {
		t.Fatal(err)
	}
	channelName := "incident-" + started.UTC().Format("20060102") + "-api"
	// The announcement follows the channel's creation; the Sev 3 messages
	// may come before either, as Alertmanager flushes the groups in any order.
	waitFor(t, 20*time.Second, "Sev 1 channel and its announcement, Sev 3 messages", func() bool {
		created := e.slack.CreatedChannels()
		return len(created) == 1 && created[0].Name == channelName && len(e.slack.Messages("#alerts")) == 2 &&
			len(e.slack.Messages("#incidents")) > 0
	})
	if ann := e.slack.Messages("#incidents"); len(ann) != 1 || !strings.Contains(ann[0].Text, "INCIDENT DECLARED") && !strings.Contains(ann[0].Text, channelName) && !strings.Contains(ann[0].Text, e.slack.CreatedChannels()[0].ID) {
		t.Errorf("#incidents: %+v, want one announcement of the Sev 1 channel", ann)
	}
	for _, c := range e.slack.Calls() {
		for _, s := range c.Strings {
			if strings.Contains(s, "<!channel>") || strings.Contains(s, "<!here>") || strings.Contains(s, "<http://evil") || strings.Contains(s, "@here") {
				t.Fatalf("alert text reached Slack unescaped in %s: %q", c.Method, s)
			}
		}
	}

	waitFor(t, 20*time.Second, "api paged", func() bool { return len(e.pd.OpenAlerts()) == 1 })
	paged := e.pd.OpenAlerts()[0]
	if paged.Severity != "critical" || !strings.HasPrefix(paged.Summary, "INCIDENT: api - api is failing since ") || paged.RoutingKey != pdKey {
		t.Errorf("page: %+v", paged)
	}
	for _, ev := range e.pd.Events() {
		if ev.Payload != nil && strings.Contains(ev.Payload.Summary, "checkout") {
			t.Errorf("Sev 3 checkout paged: %+v", ev.Payload)
		}
	}

	if err := am.PostAlerts(ctx, amtest.Resolve(api)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "api page resolved", func() bool {
		a, ok := e.pd.Alert(paged.DedupKey)
		return ok && a.Status == fakepd.Resolved && len(e.pd.OpenAlerts()) == 0
	})
	waitFor(t, 20*time.Second, "api's Grafana region closed", func() bool {
		for _, a := range e.grafana.Annotations() {
			if slices.Contains(a.Tags, "service:api") && slices.Contains(a.Tags, "sev1") && a.IsRegion() {
				return true
			}
		}
		return false
	})
	if n := len(e.grafana.Annotations()); n != 3 {
		t.Errorf("%d Grafana annotations, want one per incident (3)", n)
	}
	channelID := e.slack.CreatedChannels()[0].ID
	waitFor(t, 20*time.Second, "api message updated to resolved", func() bool {
		msgs := e.slack.Messages(channelID)
		for _, m := range msgs {
			if m.ThreadTS == "" && strings.Contains(string(m.Blocks), "RESOLVED") {
				return true
			}
		}
		return false
	})
	logs := d.stdout.String() + d.stderr.String()
	if strings.Contains(logs, slackToken) || strings.Contains(logs, pdKey) || strings.Contains(logs, grafToken) {
		t.Error("a receiver secret appears in amtriage's output")
	}
	if err := d.kill(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
}

func postOne(t *testing.T, d *daemon, service, ratio string) {
	t.Helper()
	body := []byte(`{"version":"4","status":"firing","groupKey":"{}:{service=\"` + service + `\"}","truncatedAlerts":0,
"alerts":[{"status":"firing","labels":{"alertname":"Errors","service":"` + service + `"},"annotations":{"error_ratio":"` + ratio + `"},
"startsAt":"2026-11-23T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"` + service + `01"}]}`)
	if code, err := post(context.Background(), d.url("/webhook"), "", body); err != nil || code != 200 {
		t.Fatalf("post: %d %v", code, err)
	}
}

// A receiver answering 500 for a while loses nothing once it recovers.
func TestReceiverFailingThenRecoveringLosesNothing(t *testing.T) {
	e := newReceiversEnv(t, "")
	// Each failure costs the outbox's backoff (1 s, 2 s, 4 s, … with jitter).
	for i := 0; i < 2; i++ {
		e.slack.Fail("chat.postMessage", fakeslack.Fault{Status: 500})
		e.slack.Fail("chat.postMessage", fakeslack.Fault{Status: 503})
	}
	d := startDaemon(t, e.cfg, freeAddr(t))
	postOne(t, d, "checkout", "7%")
	postOne(t, d, "billing", "8%")
	waitFor(t, 45*time.Second, "both messages after the outage", func() bool { return len(e.slack.Messages("#alerts")) == 2 })
	failed := 0
	for _, c := range e.slack.Calls() {
		if c.Status >= 500 {
			failed++
		}
	}
	if failed != 4 {
		t.Fatalf("%d failed calls, want the 4 injected", failed)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(e.slack.Messages("#alerts")); n != 2 {
		t.Fatalf("%d messages, want exactly 2 (retries must not duplicate)", n)
	}
}

// A receiver that hangs does not hold up the others: the log notifier
// reports the incident while Slack's request is still hanging.
func TestHungReceiverDoesNotBlockOthers(t *testing.T) {
	e := newReceiversEnv(t, "")
	e.slack.Fail("", fakeslack.Fault{Hang: true})
	d := startDaemon(t, e.cfg, freeAddr(t))
	postOne(t, d, "checkout", "7%")
	waitFor(t, 10*time.Second, "log notifier line while Slack hangs", func() bool {
		return len(eventLines(t, d.stdout.String(), "incident opened")) == 1
	})
	if n := len(e.slack.Messages("#alerts")); n != 0 {
		t.Fatalf("Slack was supposed to be hanging, got %d messages", n)
	}
}

// stormBody is one notification with n firing alerts of one service.
func stormBody(service string, n int, ratio string) []byte {
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"firing","groupKey":"{}:{service=\"` + service + `\"}","truncatedAlerts":0,"alerts":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"PodDown","service":%q,"pod":"p%d"},"annotations":{"error_ratio":%q},"startsAt":"2026-11-23T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"%s%05d"}`, service, i, ratio, service, i)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// One page per incident under a 1,000-alert storm and its redeliveries;
// an escalation re-triggers the same dedup key at the new level.
func TestOnePagePerIncidentUnderStormAndRedelivery(t *testing.T) {
	e := newReceiversEnv(t, "")
	d := startDaemon(t, e.cfg, freeAddr(t))
	storm := stormBody("api", 1000, "20%") // Sev 2
	for i := 0; i < 4; i++ {
		if code, err := post(context.Background(), d.url("/webhook"), "", storm); err != nil || code != 200 {
			t.Fatalf("post: %d %v", code, err)
		}
	}
	waitFor(t, 20*time.Second, "the page", func() bool { return len(e.pd.OpenAlerts()) == 1 })
	waitProcessed(t, d)
	time.Sleep(300 * time.Millisecond) // let any duplicate show up
	key := e.pd.OpenAlerts()[0].DedupKey
	if n := len(e.pd.Triggers(key)); n != 1 {
		t.Fatalf("%d triggers for a 1,000-alert storm delivered 4 times, want 1", n)
	}
	if n := len(e.slack.Messages("#incidents")); n != 1 {
		t.Fatalf("%d Slack messages, want 1", n)
	}
	// A Sev 1 alert joins: the same incident escalates and re-triggers.
	postOne(t, d, "api", "62%")
	waitFor(t, 20*time.Second, "the escalation", func() bool { return len(e.pd.Triggers(key)) == 2 })
	if a, _ := e.pd.Alert(key); a.Severity != "critical" || a.Status != fakepd.Triggered || len(e.pd.OpenAlerts()) != 1 {
		t.Fatalf("after escalation: %+v, %d open", a, len(e.pd.OpenAlerts()))
	}
}

// SIGKILL while a page is being delivered, then restart: every incident is
// paged, and exactly one PagerDuty alert exists per dedup key.
func TestSIGKILLMidDeliveryPagesExactlyOncePerDedupKey(t *testing.T) {
	e := newReceiversEnv(t, "")
	e.pd.Fail(fakepd.Fault{Hang: true, Times: 1})
	addr := freeAddr(t)
	d := startDaemon(t, e.cfg, addr)
	services := []string{"a", "b", "c", "d", "e"}
	for _, svc := range services {
		postOne(t, d, svc, "62%")
	}
	waitFor(t, 10*time.Second, "a delivery hanging", func() bool { return len(e.pd.Calls()) >= 1 })
	if err := d.kill(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: clean exit")
	}
	again := startDaemon(t, e.cfg, addr)
	waitFor(t, 30*time.Second, "every incident paged", func() bool { return len(e.pd.OpenAlerts()) == len(services) })
	waitProcessed(t, again)
	time.Sleep(300 * time.Millisecond)
	seen := map[string]bool{}
	for _, a := range e.pd.Alerts() {
		if seen[a.DedupKey] {
			t.Fatalf("two PagerDuty alerts for dedup key %s", a.DedupKey)
		}
		seen[a.DedupKey] = true
	}
	if len(seen) != len(services) {
		t.Fatalf("%d dedup keys, want %d", len(seen), len(services))
	}
}
