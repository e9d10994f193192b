package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions/silence"
	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/internal/amtest"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/notify/alertmanager"
)

// actionsEnv is amtriage with a Slack app (token and signing secret) on
// the Slack fake, fed by a real Alertmanager; alertmanager.url points at
// that Alertmanager when withSilences.
type actionsEnv struct {
	slack *fakeslack.Server
	hooks *slackHooks
	am    *amtest.Alertmanager
	d     *daemon
	// alerts are the incident's two alerts, as posted to Alertmanager.
	alerts []amtest.Alert
	id     string // the incident they opened
	// msg is the incident's Slack message, which the buttons are on.
	msg fakeslack.Message
}

const signingSecret = "e2e-signing-secret-4b1d7e"

func newActionsEnv(t *testing.T, withSilences bool) *actionsEnv {
	t.Helper()
	amtest.Binary(t)
	dir := t.TempDir()
	e := &actionsEnv{slack: fakeslack.New(slackToken)}
	t.Cleanup(e.slack.Close)
	e.slack.SetSigningSecret([]byte(signingSecret))
	e.hooks = newSlackHooks(t, e.slack)
	e.hooks.setEnv(t)
	writeFile(t, filepath.Join(dir, "slack-token"), slackToken+"\n")
	writeFile(t, filepath.Join(dir, "slack-signing"), signingSecret+"\n")
	addr := freeAddr(t)
	e.am = amtest.Start(t, amtest.Config{WebhookURL: "http://" + addr + "/webhook"})
	am := ""
	if withSilences {
		am = "alertmanager:\n  url: " + e.am.URL() + "\n"
	}
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), `
store:
  path: `+filepath.Join(dir, "data")+`
slack:
  api_url: `+e.slack.URL+`
  token_file: slack-token
  signing_secret_file: slack-signing
  channel: "#alerts"
  incidents_channel: "#incidents"
services:
  - name: api
    match: ['service="api"']
`+am)
	e.d = startDaemon(t, cfg, addr)

	started := time.Now().Add(-time.Minute).Truncate(time.Millisecond) // older than group_wait: flushed at once
	for _, inst := range []string{"api-a", "api-b"} {
		e.alerts = append(e.alerts, amtest.Alert{StartsAt: started,
			Labels:      map[string]string{"alertname": "HighErrorRate", "service": "api", "severity": "critical", "instance": inst},
			Annotations: map[string]string{"error_ratio": "62%", "summary": "api is failing"}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.am.PostAlerts(ctx, e.alerts); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the api incident with both alerts", func() bool {
		incs := e.d.incidents()
		if len(incs) == 1 && incs[0].AlertsFiring == 2 {
			e.id = incs[0].ID
		}
		return e.id != ""
	})
	if inc := e.d.incidents()[0]; inc.Severity != 1 {
		t.Fatalf("incident %s is Sev %d, want Sev 1 (Slack gets it)", e.id, inc.Severity)
	}
	waitFor(t, 20*time.Second, "the incident's Slack message", func() bool {
		for _, m := range e.slack.AllMessages() {
			if m.ThreadTS == "" && strings.Contains(m.Text+string(m.Blocks), "api is failing") {
				e.msg = m
				return true
			}
		}
		return false
	})
	return e
}

// click sends a signed click of button on the incident, as Slack does, and
// checks the endpoint took it.
func (e *actionsEnv) click(t *testing.T, button slackin.ActionID, responseURL string) {
	t.Helper()
	v, err := slackin.EncodeValue(button, slackin.Value{Incident: e.id})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent, err := e.slack.SendInteraction(ctx, e.d.url("/slack/interactions"), fakeslack.InteractionPayload{
		ActionID: string(button), Value: v, BlockID: slackin.BlockIDPrefix + e.id, ResponseURL: responseURL,
		ChannelID: e.msg.Channel, MessageTS: e.msg.TS})
	if err != nil || sent.Status != http.StatusOK {
		t.Fatalf("%s click: HTTP %d %q, %v; want 200", button, sent.Status, sent.Response, err)
	}
}

type timelineEntry struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Text string    `json:"text"`
}

// timeline is GET /api/incidents/{id}'s timeline.
func (e *actionsEnv) timeline(t *testing.T) []timelineEntry {
	t.Helper()
	resp, err := e.d.get("/api/incidents/" + url.PathEscape(e.id))
	if err != nil {
		t.Fatalf("GET /api/incidents/%s: %v", e.id, err)
	}
	defer resp.Body.Close()
	var body struct {
		ID       string          `json:"id"`
		Timeline []timelineEntry `json:"timeline"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.ID != e.id {
		t.Fatalf("GET /api/incidents/%s: HTTP %d, id %q, %v", e.id, resp.StatusCode, body.ID, err)
	}
	return body.Timeline
}

// entry returns the timeline's last entry of kind whose text contains all
// of parts.
func entry(tl []timelineEntry, kind string, parts ...string) (timelineEntry, bool) {
	for i := len(tl) - 1; i >= 0; i-- {
		if tl[i].Kind != kind {
			continue
		}
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(tl[i].Text, p) }) {
			return tl[i], true
		}
	}
	return timelineEntry{}, false
}

func (e *actionsEnv) silences(t *testing.T) []amtest.Silence {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.am.Silences(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// alertStates are Alertmanager's states of the incident's alerts by
// instance: "suppressed[<silence id>]", "active[]".
func (e *actionsEnv) alertStates(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alerts, err := e.am.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range alerts {
		labels, _ := a["labels"].(map[string]any)
		status, _ := a["status"].(map[string]any)
		inst, _ := labels["instance"].(string)
		state, _ := status["state"].(string)
		by, _ := status["silencedBy"].([]any)
		out[inst] = fmt.Sprintf("%s%v", state, by)
	}
	return out
}

// TestSlackSilenceOnRealAlertmanager: a signed Silence 1h click makes one
// silence in the real Alertmanager, for the incident's alerts, by
// amtriage, saying who and which incident; a second click makes none; the
// alerts re-sent are muted by it; the incident shows it; Unsilence
// expires it.
func TestSlackSilenceOnRealAlertmanager(t *testing.T) {
	e := newActionsEnv(t, true)
	if !strings.Contains(e.d.stderr.String(), `"msg":"receiver enabled","receiver":"alertmanager"`) {
		t.Errorf("no receiver enabled log line for alertmanager:\n%s", e.d.stderr.String())
	}
	const user = "<@U0FAKE001>" // the fake's default clicking user

	e.click(t, slackin.ActSilence1h, "")
	var silenced timelineEntry
	waitFor(t, 20*time.Second, "the silence on the incident's timeline", func() bool {
		var ok bool
		silenced, ok = entry(e.timeline(t), "silenced")
		return ok
	})
	all := e.silences(t)
	if len(all) != 1 {
		t.Fatalf("Alertmanager holds %d silences, want 1: %+v", len(all), all)
	}
	s := all[0]
	var ms []string
	for _, m := range s.Matchers {
		if m.IsRegex || (m.IsEqual != nil && !*m.IsEqual) {
			t.Errorf("matcher %+v is not an exact one", m)
		}
		ms = append(ms, m.Name+"="+m.Value)
	}
	if got, want := strings.Join(ms, ","), "alertname=HighErrorRate,service=api,severity=critical"; got != want {
		t.Errorf("matchers %s, want %s (the alerts' common labels)", got, want)
	}
	if s.Status.State != "active" || s.CreatedBy != "amtriage" || !strings.Contains(s.Comment, user) ||
		!strings.Contains(s.Comment, "incident "+e.id) || !strings.Contains(s.Comment, silence.Marker(e.id)) {
		t.Errorf("silence %+v: want active, by amtriage, the comment naming %s and incident %s", s, user, e.id)
	}
	if d := s.EndsAt.Sub(s.StartsAt); d < time.Hour-time.Minute || d > time.Hour+time.Minute {
		t.Errorf("silence lasts %s, want 1h", d)
	}
	tl := e.timeline(t)
	if _, ok := entry(tl, "silence", "1h0m0s", user); !ok {
		t.Errorf("no timeline entry of the request by %s: %+v", user, tl)
	}
	if !strings.Contains(silenced.Text, s.ID) || !strings.Contains(silenced.Text, user) ||
		!strings.Contains(silenced.Text, e.am.URL()+"/#/silences/"+s.ID) {
		t.Errorf("timeline says %q, want silence %s by %s and its link", silenced.Text, s.ID, user)
	}

	// A second click (a new action_ts): refused, no second silence.
	e.click(t, slackin.ActSilence1h, "")
	waitFor(t, 20*time.Second, "the second click refused on the timeline", func() bool {
		_, ok := entry(e.timeline(t), "refused", "already silenced", s.ID)
		return ok
	})
	if all := e.silences(t); len(all) != 1 || all[0].ID != s.ID {
		t.Fatalf("after a second click Alertmanager holds %+v, want just %s", all, s.ID)
	}

	// The alerts, re-sent, are muted by the silence.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.am.PostAlerts(ctx, e.alerts); err != nil {
		t.Fatal(err)
	}
	muted := "suppressed[" + s.ID + "]"
	waitFor(t, 10*time.Second, "the alerts suppressed by the silence", func() bool {
		st := e.alertStates(t)
		return len(st) == 2 && st["api-a"] == muted && st["api-b"] == muted
	})

	// Unsilence: expired, on the timeline, the alerts active again.
	e.click(t, slackin.ActUnsilence, "")
	waitFor(t, 20*time.Second, "the silence expired", func() bool {
		all := e.silences(t)
		return len(all) == 1 && all[0].ID == s.ID && all[0].Status.State == "expired"
	})
	waitFor(t, 20*time.Second, "the unsilence on the timeline", func() bool {
		tl := e.timeline(t)
		_, requested := entry(tl, "unsilence", s.ID, user)
		_, done := entry(tl, "unsilenced", s.ID, "expired")
		return requested && done
	})
	waitFor(t, 10*time.Second, "the alerts active again", func() bool {
		st := e.alertStates(t)
		return st["api-a"] == "active[]" && st["api-b"] == "active[]"
	})
	if all := e.silences(t); len(all) != 1 {
		t.Errorf("Alertmanager holds %d silences after Unsilence, want the expired one", len(all))
	}
}

// TestSlackSilenceWithoutAlertmanager: with alertmanager.url unset the
// Silence click is answered to the user alone, at its response_url, and
// nothing is silenced or put on the incident.
func TestSlackSilenceWithoutAlertmanager(t *testing.T) {
	e := newActionsEnv(t, false)
	if strings.Contains(e.d.stderr.String(), `"receiver":"alertmanager"`) {
		t.Errorf("alertmanager receiver enabled without alertmanager.url:\n%s", e.d.stderr.String())
	}
	hook := e.hooks.responseURL()
	e.click(t, slackin.ActSilence1h, hook)
	var got fakeslack.HookReply
	waitFor(t, 10*time.Second, "the ephemeral answer", func() bool {
		replies := e.slack.HookReplies()
		if len(replies) > 0 {
			got = replies[0]
		}
		return len(replies) > 0
	})
	u, _ := url.Parse(hook)
	if got.Hook != u.Path || got.ResponseType != "ephemeral" || got.ReplaceOriginal == nil || *got.ReplaceOriginal ||
		!strings.Contains(got.Text, "no Alertmanager is configured (alertmanager.url)") {
		t.Errorf("answer %+v at %s, want an ephemeral refusal naming alertmanager.url", got, u.Path)
	}
	if n := e.hooks.connects.Load(); n < 1 {
		t.Errorf("%d CONNECTs to hooks.slack.com: the answer did not go the way Slack's does", n)
	}
	// The endpoint refused it before storing anything. An Acknowledge
	// clicked after it is applied in inbox order: once it is on the
	// timeline, a stored Silence would have been too.
	e.click(t, slackin.ActAck, "")
	waitFor(t, 20*time.Second, "the acknowledge on the timeline", func() bool {
		_, ok := entry(e.timeline(t), "acknowledged", "<@U0FAKE001>")
		return ok
	})
	if s := e.silences(t); len(s) != 0 {
		t.Errorf("Alertmanager holds %+v, want no silence", s)
	}
	for _, en := range e.timeline(t) {
		if en.Kind == "silence" || en.Kind == "silenced" {
			t.Errorf("timeline has %+v", en)
		}
	}
	if n := len(e.slack.HookReplies()); n != 1 {
		t.Errorf("%d answers, want 1", n)
	}
}

// TestSilenceReceiverBuilt: the alertmanager receiver is built whenever
// alertmanager.url is set, shadow mode included (the endpoint takes
// Silence clicks then too), and takes only the silence requests.
func TestSilenceReceiverBuilt(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		want        bool
	}{
		{"no url", "", false},
		{"url", "alertmanager: {url: http://127.0.0.1:9093}\n", true},
		{"url in shadow mode", "shadow: true\nalertmanager: {url: http://127.0.0.1:9093}\n", true},
		{"url with basic auth", "alertmanager: {url: http://127.0.0.1:9093/am, basic_auth: {username: u, password_file: pw}, timeout: 3s}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pw"), "secret\n")
			cfg, err := loadConfig(writeFile(t, filepath.Join(dir, "amtriage.yml"), "store: {path: "+filepath.Join(dir, "data")+"}\n"+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.DiscardHandler)
			ns, err := buildNotifiers(cfg, log, log, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(ns, func(n notify.Notifier) bool { return n.Name() == "alertmanager" })
			if (i >= 0) != tc.want {
				t.Fatalf("alertmanager receiver built: %t, want %t", i >= 0, tc.want)
			}
			if i < 0 {
				return
			}
			if _, ok := ns[i].(*alertmanager.Notifier); !ok {
				t.Errorf("receiver %T, want *alertmanager.Notifier", ns[i])
			}
		})
	}
}

// slackHooks plays https://hooks.slack.com for the daemon, so that its
// answers to response_url go through the check production makes (https,
// host hooks.slack.com) with no test-only option: the daemon's HTTPS_PROXY
// is a CONNECT proxy that tunnels hooks.slack.com:443 to a TLS server with
// a certificate for that name from a test CA (the daemon's SSL_CERT_FILE),
// which forwards to the Slack fake's response URLs.
type slackHooks struct {
	fake     *fakeslack.Server
	proxy    string // HTTPS_PROXY
	caFile   string // SSL_CERT_FILE
	connects atomic.Int32
}

func newSlackHooks(t *testing.T, fake *fakeslack.Server) *slackHooks {
	t.Helper()
	h := &slackHooks{fake: fake}
	cert, pemCert := selfSigned(t, "hooks.slack.com")
	h.caFile = writeFile(t, filepath.Join(t.TempDir(), "ca.pem"), pemCert)
	target, err := url.Parse(strings.TrimSuffix(fake.URL, "/"))
	if err != nil {
		t.Fatal(err)
	}
	hooks := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	hooks.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hooks.StartTLS()
	t.Cleanup(hooks.Close)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != "hooks.slack.com:443" {
			http.Error(w, "only CONNECT hooks.slack.com:443", http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", hooks.Listener.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		h.connects.Add(1)
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { io.Copy(up, conn); up.Close() }()
		go func() { io.Copy(conn, up); conn.Close() }()
	}))
	t.Cleanup(proxy.Close)
	h.proxy = proxy.URL
	return h
}

// setEnv gives the daemon started next the proxy and the CA; loopback
// addresses (the fakes, Alertmanager) never go through a proxy.
func (h *slackHooks) setEnv(t *testing.T) {
	t.Setenv("HTTPS_PROXY", h.proxy)
	t.Setenv("https_proxy", h.proxy)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	t.Setenv("SSL_CERT_FILE", h.caFile)
}

// responseURL is a fresh response_url of the fake, as Slack spells it.
func (h *slackHooks) responseURL() string {
	u, err := url.Parse(h.fake.NewResponseURL())
	if err != nil {
		panic(err)
	}
	return "https://hooks.slack.com" + u.Path
}

// selfSigned is a certificate for host that is its own CA.
func selfSigned(t *testing.T, host string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
