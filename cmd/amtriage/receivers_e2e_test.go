package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/amtest"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
)

// receiversEnv is amtriage configured with every receiver pointed at local
// servers that check requests as the real APIs do.
type receiversEnv struct {
	dir   string
	cfg   string
	slack *fakeslack.Server
}

const slackToken = "xoxb-e2e-5f1c9a7d3b"

func newReceiversEnv(t *testing.T, extra string) *receiversEnv {
	t.Helper()
	e := &receiversEnv{dir: t.TempDir(), slack: fakeslack.New(slackToken)}
	t.Cleanup(e.slack.Close)
	writeFile(t, filepath.Join(e.dir, "slack-token"), slackToken+"\n")
	e.cfg = writeFile(t, filepath.Join(e.dir, "amtriage.yml"), `
store:
  path: `+filepath.Join(e.dir, "data")+`
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
	waitFor(t, 20*time.Second, "Sev 1 channel, Sev 3 messages", func() bool {
		created := e.slack.CreatedChannels()
		return len(created) == 1 && created[0].Name == channelName && len(e.slack.Messages("#alerts")) == 2
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

	if err := am.PostAlerts(ctx, amtest.Resolve(api)); err != nil {
		t.Fatal(err)
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
	if strings.Contains(logs, slackToken) {
		t.Error("the Slack token appears in amtriage's output")
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
	for i := 0; i < 3; i++ {
		e.slack.Fail("chat.postMessage", fakeslack.Fault{Status: 500})
		e.slack.Fail("chat.postMessage", fakeslack.Fault{Status: 503})
	}
	d := startDaemon(t, e.cfg, freeAddr(t))
	postOne(t, d, "checkout", "7%")
	postOne(t, d, "billing", "8%")
	waitFor(t, 30*time.Second, "both messages after the outage", func() bool { return len(e.slack.Messages("#alerts")) == 2 })
	failed := 0
	for _, c := range e.slack.Calls() {
		if c.Status >= 500 {
			failed++
		}
	}
	if failed != 6 {
		t.Fatalf("%d failed calls, want the 6 injected", failed)
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
