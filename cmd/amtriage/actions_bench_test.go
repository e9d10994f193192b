package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions/silence"
	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/internal/amtest"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
)

// startActionsDaemon runs amtriage with the PagerDuty receiver at pdURL and
// a Slack app's signing secret, so that POST /slack/interactions is on.
// There is no Slack receiver: the clicks come from the fake's
// SendInteraction with the value amtriage's buttons carry, and PagerDuty's
// is the only delivery measured. Rate limits are lifted on our side as in
// BenchmarkWebhookToPagerDuty: latency, not PagerDuty's 120/min. extra is
// appended to the configuration (YAML, "" for none).
func startActionsDaemon(b *testing.B, pdURL string, secret []byte, extra string) *daemon {
	b.Helper()
	dir := b.TempDir()
	for name, content := range map[string][]byte{"pd-key": []byte("benchPDroutingKey0123456789abcde"), "slack-signing": secret} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "c.yml")
	yml := "store:\n  path: " + filepath.Join(dir, "data") +
		"\npagerduty:\n  url: " + pdURL + "\n  routing_key_file: pd-key\n  events_per_minute: 1000000\n" +
		"slack:\n  signing_secret_file: slack-signing\n" + extra
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		b.Fatal(err)
	}
	return startDaemon(b, cfg, freeAddr(b))
}

// clickAck sends a signed block_actions click of Acknowledge on incident id,
// as Slack would for the button amtriage posts, and returns its answer and
// how long the answer took.
func clickAck(ctx context.Context, sl *fakeslack.Server, url, id string, n int) (fakeslack.Sent, time.Duration, error) {
	return clickButton(ctx, sl, url, slackin.ActAck, "Acknowledge", id, n)
}

// clickButton is clickAck for any of amtriage's buttons; text is its label.
func clickButton(ctx context.Context, sl *fakeslack.Server, url string, act slackin.ActionID, text, id string, n int) (fakeslack.Sent, time.Duration, error) {
	value, err := slackin.EncodeValue(act, slackin.Value{Incident: id})
	if err != nil {
		return fakeslack.Sent{}, 0, fmt.Errorf("button value for %s: %w", id, err)
	}
	p := fakeslack.InteractionPayload{ActionID: string(act), Value: value, BlockID: "amtriage-actions",
		ButtonText: text, MessageTS: fmt.Sprintf("1700000000.%06d", n)}
	start := time.Now()
	sent, err := sl.SendInteraction(ctx, url, p)
	return sent, time.Since(start), err
}

// pctMS reports lat's p50 and p99 (and max) in milliseconds under prefix.
func pctMS(b *testing.B, lat []time.Duration, prefix string, withMax bool) (p50 float64) {
	b.Helper()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), prefix+"p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), prefix+"p99-ms")
	if withMax {
		b.ReportMetric(ms(lat[len(lat)-1]), prefix+"max-ms")
	}
	return ms(lat[len(lat)/2])
}

// BenchmarkSlackAckToPagerDuty measures, through a real amtriage process,
// the time from a signed Slack Acknowledge click to the PagerDuty fake
// accepting the acknowledge event for the incident's dedup key: the click's
// verification and inbox append (fsync), the leader applying it to the
// incident (state commit, fsync), the outbox and the Events API call. The
// baseline, in the same process and interleaved with it, is the page itself:
// a new Sev 1 webhook to the fake accepting its trigger (the path of
// BenchmarkWebhookToPagerDuty). Each iteration pages one new incident and
// then acknowledges it, sequentially; "ack/page" is the ratio of the p50s.
//
// Run: go test ./cmd/amtriage/ -run '^$' -bench SlackAckToPagerDuty -benchtime 200x -count 3
func BenchmarkSlackAckToPagerDuty(b *testing.B) {
	pd := fakepd.New()
	defer pd.Close()
	pd.SetRateLimit(0, 0)
	sl := fakeslack.New("xoxb-bench-unused")
	defer sl.Close()
	d := startActionsDaemon(b, pd.URL, sl.SigningSecret(), "")
	defer d.kill(syscall.SIGTERM)
	url := d.url("/slack/interactions")
	ctx := context.Background()
	page := make([]time.Duration, 0, b.N)
	ack := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id, took := pageOne(ctx, b, d, pd, i)
		page = append(page, took)

		start := time.Now()
		sent, _, err := clickAck(ctx, sl, url, id, i)
		if err != nil || sent.Status != 200 {
			b.Fatalf("click Acknowledge on %s: %d %v %s", id, sent.Status, err, sent.Response)
		}
		for deadline := start.Add(30 * time.Second); ; time.Sleep(200 * time.Microsecond) {
			if a, ok := pd.Alert(id); ok && a.Status == fakepd.Acknowledged {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s not acknowledged in PagerDuty within 30s of the click", id)
			}
		}
		ack = append(ack, time.Since(start))
	}
	b.StopTimer()
	// Exactly one acknowledge per incident: a click is applied once.
	if n := len(pd.Calls()); n != 2*b.N {
		b.Fatalf("%d Events API calls for %d incidents, want a trigger and an acknowledge each", n, b.N)
	}
	ackP50 := pctMS(b, ack, "", false)
	pageP50 := pctMS(b, page, "page-", false)
	b.ReportMetric(ackP50/pageP50, "ack/page")
}

// BenchmarkSlackSilenceToAlertmanager measures, through a real amtriage
// process whose alertmanager.url is a real Alertmanager (internal/amtest),
// the time from a signed Silence 1h click to Alertmanager listing the
// incident's silence as active (GET /api/v2/silences, polled every
// millisecond; the silence's comment carries silence.Marker): the click's
// verification and inbox append (fsync), the leader applying it (state
// commit, fsync), the outbox and the alertmanager receiver's look-up of an
// existing silence and its POST. The baseline, interleaved in the same
// process as in BenchmarkSlackAckToPagerDuty, is the page: a new Sev 1
// webhook to the PagerDuty fake accepting its trigger. "silence/page" is
// the ratio of the p50s. The benchmark fails unless Alertmanager holds
// exactly one silence per incident at the end, the one each incident shows.
// Then, to tell Alertmanager's share from amtriage's, the same client
// (silence.Client.Ensure: look-up, then POST) makes N more silences
// directly from the benchmark, timed alone ("am-").
//
// Run: go test ./cmd/amtriage/ -run '^$' -bench SlackSilenceToAlertmanager -benchtime 50x -count 3
func BenchmarkSlackSilenceToAlertmanager(b *testing.B) {
	amtest.Binary(b)
	pd := fakepd.New()
	defer pd.Close()
	pd.SetRateLimit(0, 0)
	sl := fakeslack.New("xoxb-bench-unused")
	defer sl.Close()
	// No alert is posted to Alertmanager: it only holds the silences, so
	// its webhook goes nowhere.
	am := amtest.Start(b, amtest.Config{WebhookURL: "http://127.0.0.1:9/unused"})
	d := startActionsDaemon(b, pd.URL, sl.SigningSecret(), "alertmanager:\n  url: "+am.URL()+"\n")
	defer d.kill(syscall.SIGTERM)
	url := d.url("/slack/interactions")
	ctx := context.Background()
	page := make([]time.Duration, 0, b.N)
	made := make([]time.Duration, 0, b.N)
	ids := make([]string, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id, took := pageOne(ctx, b, d, pd, i)
		page = append(page, took)
		ids = append(ids, id)

		marker := silence.Marker(id)
		start := time.Now()
		sent, _, err := clickButton(ctx, sl, url, slackin.ActSilence1h, "Silence 1h", id, i)
		if err != nil || sent.Status != 200 {
			b.Fatalf("click Silence 1h on %s: %d %v %s", id, sent.Status, err, sent.Response)
		}
		for deadline := start.Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			all, err := am.Silences(ctx)
			if err != nil {
				b.Fatalf("polling Alertmanager for %s's silence: %v", id, err)
			}
			if slices.ContainsFunc(all, func(s amtest.Silence) bool {
				return s.Status.State == "active" && strings.Contains(s.Comment, marker)
			}) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no active silence for %s in Alertmanager within 30s of the click", id)
			}
		}
		made = append(made, time.Since(start))
	}
	b.StopTimer()
	checkOneSilenceEach(b, d, am, ids)
	silenceP50 := pctMS(b, made, "", false)
	pageP50 := pctMS(b, page, "page-", false)
	b.ReportMetric(silenceP50/pageP50, "silence/page")
	pctMS(b, ensureDirect(b, am, b.N), "am-", false)
}

// ensureDirect makes n silences in am with silence.Client.Ensure, as the
// alertmanager receiver does, for services no incident has, and returns how
// long each took.
func ensureDirect(b *testing.B, am *amtest.Alertmanager, n int) []time.Duration {
	b.Helper()
	c, err := silence.New(silence.Config{URL: am.URL()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, n)
	for i := range n {
		ms, err := silence.MatchersFor([]map[string]string{{"alertname": "PodDown", "service": fmt.Sprintf("direct-%06d", i), "pod": "p0"}})
		if err != nil {
			b.Fatal(err)
		}
		marker := silence.Marker(fmt.Sprintf("direct-%06d", i))
		now := time.Now()
		s := silence.Silence{Matchers: ms, StartsAt: now, EndsAt: now.Add(time.Hour), CreatedBy: silence.CreatedBy,
			Comment: "benchmark baseline " + marker}
		start := time.Now()
		if _, created, err := c.Ensure(ctx, s, marker); err != nil || !created {
			b.Fatalf("direct silence %d: created %t, %v", i, created, err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// checkOneSilenceEach fails b unless Alertmanager holds exactly one
// silence for each of ids, active, and nothing else, once the daemon has
// applied every outcome (each incident shows its silence's id): a click is
// applied once, and a receiver's retry finds the silence it made.
func checkOneSilenceEach(b *testing.B, d *daemon, am *amtest.Alertmanager, ids []string) {
	b.Helper()
	shown := map[string]string{} // incident → the silence id it shows
	for deadline := time.Now().Add(30 * time.Second); len(shown) < len(ids); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("after 30s %d of %d incidents show their silence", len(shown), len(ids))
		}
		resp, err := d.get("/api/incidents?limit=1000")
		if err != nil {
			b.Fatalf("GET /api/incidents: %v", err)
		}
		var body struct {
			Incidents []struct {
				ID      string `json:"id"`
				Silence *struct {
					ID      string `json:"id"`
					Pending bool   `json:"pending"`
				} `json:"silence"`
			} `json:"incidents"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			b.Fatalf("decode /api/incidents: %v", err)
		}
		for _, inc := range body.Incidents {
			if inc.Silence != nil && inc.Silence.ID != "" && !inc.Silence.Pending {
				shown[inc.ID] = inc.Silence.ID
			}
		}
	}
	all, err := am.Silences(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if len(all) != len(ids) {
		b.Fatalf("Alertmanager holds %d silences for %d incidents, want one each", len(all), len(ids))
	}
	for _, id := range ids {
		var held []string
		for _, s := range all {
			if strings.Contains(s.Comment, silence.Marker(id)) && s.Status.State == "active" {
				held = append(held, s.ID)
			}
		}
		if len(held) != 1 || held[0] != shown[id] {
			b.Fatalf("incident %s: active silences %v in Alertmanager, the incident shows %q; want exactly that one", id, held, shown[id])
		}
	}
}

// BenchmarkSlackAnswerWithHungPagerDuty measures how long signed clicks
// wait for their HTTP answer (Slack gives up after 3 s) while the outbox is
// backed up: PagerDuty hangs every request, 200 Sev 1 incidents are
// processed and queued for it (its 32 concurrent deliveries all hung), and
// then one Acknowledge click per incident is sent, sequentially. The
// baseline, in the same run, is the same clicks on a daemon whose PagerDuty
// answers and has nothing queued. A click answered other than 200 fails the
// benchmark; the answer times are a measurement, not an assertion.
//
// Run: go test ./cmd/amtriage/ -run '^$' -bench SlackAnswerWithHungPagerDuty -benchtime 1x -count 3
func BenchmarkSlackAnswerWithHungPagerDuty(b *testing.B) {
	const incidents = 200
	for _, hung := range []bool{false, true} {
		name := "healthy"
		if hung {
			name = "hung-pagerduty"
		}
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			var hanging int
			var applied time.Duration
			for range b.N {
				pd := fakepd.New()
				pd.SetRateLimit(0, 0)
				sl := fakeslack.New("xoxb-bench-unused")
				d := startActionsDaemon(b, pd.URL, sl.SigningSecret(), "")
				if hung {
					pd.HangFor(time.Hour) // released by pd.Close
				}
				ids := queueIncidents(b, d, pd, incidents, hung)
				if hung {
					hanging += len(pd.Calls()) // every one of them hanging, none answered
				}
				ctx := context.Background()
				for i, id := range ids {
					sent, took, err := clickAck(ctx, sl, d.url("/slack/interactions"), id, i)
					if err != nil || sent.Status != 200 {
						b.Fatalf("click Acknowledge on %s: %d %v %s", id, sent.Status, err, sent.Response)
					}
					lat = append(lat, took)
				}
				// The leader applies the clicks whatever PagerDuty does:
				// the acts wait in the outbox, not the incidents.
				answered := time.Now()
				for deadline := answered.Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if _, acked := incidentIDs(b, d); acked == len(ids) {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("clicks not applied within 30s of the last answer")
					}
				}
				applied += time.Since(answered)
				if hung {
					if n := len(pd.Events()); n != 0 {
						b.Fatalf("the hung PagerDuty accepted %d events", n)
					}
				}
				pd.Close() // first: releases the hung requests, which a graceful stop waits for
				d.kill(syscall.SIGTERM)
				sl.Close()
			}
			pctMS(b, lat, "answer-", true)
			b.ReportMetric(float64(applied.Microseconds())/1000/float64(b.N), "all-applied-ms")
			if hung {
				b.ReportMetric(float64(hanging)/float64(b.N), "hung-requests")
			}
		})
	}
}

// queueIncidents posts n new Sev 1 incidents (8 senders), waits until they
// are processed, and returns their ids. With a healthy PagerDuty it also
// waits until each is paged, so that nothing is queued; with a hung one,
// until every concurrent delivery is hanging.
func queueIncidents(b *testing.B, d *daemon, pd *fakepd.Server, n int, hung bool) []string {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for s := range 8 {
		wg.Go(func() {
			for i := s; i < n; i += 8 {
				if code, err := post(context.Background(), d.url("/webhook"), "", stormBody(fmt.Sprintf("svc-%06d", i), 1, "62%")); err != nil || code != 200 {
					errs <- fmt.Errorf("post %d: %d %v", i, code, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	var ids []string
	for {
		if r, err := httpGetJSON(d.url("/readyz")); err == nil && r["inbox_pending"] == float64(0) {
			ids, _ = incidentIDs(b, d)
			settled := len(pd.OpenAlerts()) == n
			if hung {
				settled = len(pd.Calls()) >= 32 // delivery.concurrency's default: all hanging
			}
			if len(ids) == n && settled {
				return ids
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 60s: %d incidents, %d paged, %d PagerDuty calls", len(ids), len(pd.OpenAlerts()), len(pd.Calls()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// incidentIDs lists the daemon's incidents' ids (up to the API's 1,000)
// and counts those acknowledged.
func incidentIDs(b *testing.B, d *daemon) (ids []string, acked int) {
	b.Helper()
	resp, err := d.get("/api/incidents?limit=1000")
	if err != nil {
		b.Fatalf("GET /api/incidents: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Incidents []struct {
			ID             string    `json:"id"`
			AcknowledgedAt time.Time `json:"acknowledged_at"`
		} `json:"incidents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		b.Fatalf("decode /api/incidents: %v", err)
	}
	ids = make([]string, len(body.Incidents))
	for i, inc := range body.Incidents {
		ids[i] = inc.ID
		if !inc.AcknowledgedAt.IsZero() {
			acked++
		}
	}
	return ids, acked
}

// pageOne posts the i-th Sev 1 incident (service svc-i) and waits for
// PagerDuty's trigger: the page, the baseline of the clicks' times.
func pageOne(ctx context.Context, b *testing.B, d *daemon, pd *fakepd.Server, i int) (dedupKey string, took time.Duration) {
	b.Helper()
	start := time.Now()
	if code, err := post(ctx, d.url("/webhook"), "", stormBody(fmt.Sprintf("svc-%06d", i), 1, "62%")); err != nil || code != 200 {
		b.Fatalf("post: %d %v", code, err)
	}
	for deadline := start.Add(30 * time.Second); ; time.Sleep(200 * time.Microsecond) {
		if alerts := pd.Alerts(); len(alerts) == i+1 {
			return alerts[i].DedupKey, time.Since(start)
		}
		if time.Now().After(deadline) {
			b.Fatalf("incident %d not paged within 30s", i)
		}
	}
}
