package silence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/amtest"
)

// notifications records the webhooks Alertmanager sends: the label sets of
// each notification's firing alerts.
type notifications struct {
	mu   sync.Mutex
	msgs [][]map[string]string
	news chan struct{}
}

func (n *notifications) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var firing []map[string]string
	for _, a := range msg.Alerts {
		if a.Status == "firing" {
			firing = append(firing, a.Labels)
		}
	}
	n.mu.Lock()
	n.msgs = append(n.msgs, firing)
	n.mu.Unlock()
	select {
	case n.news <- struct{}{}:
	default:
	}
}

// waitFor returns the first notification from index *from on that has an
// alert labelled instance=inst, advancing *from past it.
func (n *notifications) waitFor(t *testing.T, from *int, inst string) []map[string]string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		n.mu.Lock()
		for ; *from < len(n.msgs); *from++ {
			m := n.msgs[*from]
			if slices.ContainsFunc(m, func(l map[string]string) bool { return l["instance"] == inst }) {
				*from++
				n.mu.Unlock()
				return m
			}
		}
		n.mu.Unlock()
		select {
		case <-n.news:
		case <-deadline:
			t.Fatalf("no notification with instance %s within 30 s", inst)
		}
	}
}

func instances(alerts []map[string]string) string {
	var out []string
	for _, a := range alerts {
		out = append(out, a["instance"])
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// alertStates polls Alertmanager's /api/v2/alerts until want holds for the
// states it reports by instance (state and silencedBy), and returns them.
func alertStates(t *testing.T, am *amtest.Alertmanager, what string, want func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		alerts, err := am.Alerts(ctx)
		cancel()
		if err != nil {
			t.Fatalf("alerts: %v", err)
		}
		got := map[string]string{}
		for _, a := range alerts {
			labels, _ := a["labels"].(map[string]any)
			status, _ := a["status"].(map[string]any)
			inst, _ := labels["instance"].(string)
			state, _ := status["state"].(string)
			by, _ := status["silencedBy"].([]any)
			got[inst] = fmt.Sprintf("%s%v", state, by)
		}
		if want(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts never %s: %v", what, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAgainstAlertmanager: the Silence and Unsilence actions' calls against
// the real Alertmanager. A silence for an incident's alerts is listed active
// with our matchers, creator and comment; Alertmanager mutes the incident's
// alerts and still notifies a neighbour's; a second Ensure makes no second
// silence; Expire ends it and the alerts are notified again.
func TestAgainstAlertmanager(t *testing.T) {
	t.Parallel()
	rec := &notifications{news: make(chan struct{}, 1)}
	hook := httptest.NewServer(rec)
	t.Cleanup(hook.Close)
	// Grouped by alertname only: the incident's alerts and the neighbour's
	// go out in one notification, so a muted alert is one missing from it.
	am := amtest.Start(t, amtest.Config{WebhookURL: hook.URL, GroupBy: []string{"alertname"}})
	c := newClient(t, Config{URL: am.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const incident = "api-0a1b2c3d4e5f"
	start := time.Now().Add(-time.Minute) // older than group_wait: flushed at once
	mk := func(service, instance string) amtest.Alert {
		return amtest.Alert{StartsAt: start, Labels: map[string]string{
			"alertname": "SilenceHarness", "service": service, "severity": "critical", "instance": instance,
		}}
	}
	ours := []amtest.Alert{mk("api", "api-a"), mk("api", "api-b")}
	neighbour := mk("web", "web-a")
	var labels []map[string]string
	for _, a := range ours {
		labels = append(labels, a.Labels)
	}
	matchers, err := MatchersFor(labels)
	if err != nil {
		t.Fatalf("MatchersFor: %v", err)
	}

	if found, err := c.FindActive(ctx, CreatedBy, Marker(incident)); err != nil || len(found) != 0 {
		t.Fatalf("FindActive before any silence: %v, %v", found, err)
	}
	now := time.Now().UTC()
	sil := Silence{
		Matchers: matchers, StartsAt: now, EndsAt: now.Add(time.Hour), CreatedBy: CreatedBy,
		Comment: "Silenced 1h from Slack by <@U024BE7LH> for INCIDENT: api - SilenceHarness " + Marker(incident),
	}
	id, created, err := c.Ensure(ctx, sil, Marker(incident))
	if err != nil || !created || id == "" {
		t.Fatalf("Ensure = %q, %t, %v", id, created, err)
	}

	got, err := c.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	var ms []string
	for _, m := range got.Matchers {
		ms = append(ms, m.String())
	}
	if got.ID != id || got.State() != StateActive || got.CreatedBy != "amtriage" || got.Comment != sil.Comment ||
		strings.Join(ms, ",") != `alertname="SilenceHarness",service="api",severity="critical"` ||
		got.EndsAt.Sub(got.StartsAt).Round(time.Second) != time.Hour {
		t.Fatalf("Alertmanager has %+v (matchers %v)", got, ms)
	}

	// A second click, or the outbox's retry after a crash that lost the
	// id: found, not created again.
	again, created, err := c.Ensure(ctx, sil, Marker(incident))
	if err != nil || created || again != id {
		t.Fatalf("second Ensure = %q, created %t, %v; want %q found", again, created, err, id)
	}
	found, err := c.FindActive(ctx, CreatedBy, Marker(incident))
	if err != nil || len(found) != 1 || found[0].ID != id {
		t.Fatalf("FindActive = %+v, %v; want just %s", found, err, id)
	}
	all, err := c.List(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("Alertmanager lists %d silences (%v), want 1", len(all), err)
	}

	// Alertmanager mutes the incident's alerts, not the neighbour's.
	if err := am.PostAlerts(ctx, append(ours, neighbour)); err != nil {
		t.Fatal(err)
	}
	states := alertStates(t, am, "muted by the silence", func(s map[string]string) bool {
		return len(s) == 3 && s["api-a"] == "suppressed["+id+"]" && s["api-b"] == "suppressed["+id+"]" && s["web-a"] == "active[]"
	})
	t.Logf("alert states: %v", states)
	from := 0
	if msg := rec.waitFor(t, &from, "web-a"); instances(msg) != "web-a" {
		t.Fatalf("notification with %s: the silenced alerts were sent", instances(msg))
	}

	// Unsilence.
	if err := c.Expire(ctx, id); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if got, err := c.Get(ctx, id); err != nil || got.State() != StateExpired {
		t.Fatalf("after Expire: %+v, %v", got, err)
	}
	if found, err := c.FindActive(ctx, CreatedBy, Marker(incident)); err != nil || len(found) != 0 {
		t.Fatalf("FindActive after Expire: %+v, %v", found, err)
	}
	if err := c.Expire(ctx, id); err != nil {
		t.Fatalf("Expire again (an Unsilence retried): %v", err)
	}
	alertStates(t, am, "unmuted", func(s map[string]string) bool {
		return s["api-a"] == "active[]" && s["api-b"] == "active[]"
	})
	if msg := rec.waitFor(t, &from, "api-a"); instances(msg) != "api-a,api-b,web-a" {
		t.Fatalf("after Unsilence the group notifies %s, want all three", instances(msg))
	}

	// Silence after Unsilence is a new silence.
	sil.StartsAt, sil.EndsAt = time.Now().UTC(), time.Now().UTC().Add(4*time.Hour)
	id2, created, err := c.Ensure(ctx, sil, Marker(incident))
	if err != nil || !created || id2 == id {
		t.Fatalf("Ensure after Expire = %q, created %t, %v; want a new silence", id2, created, err)
	}
}

// TestAlertmanagerRefusals: what the real Alertmanager (0.25 here) answers
// to the calls that cannot succeed, as the errors the outbox sees.
func TestAlertmanagerRefusals(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t, amtest.Config{WebhookURL: "http://127.0.0.1:9/unused"})
	c := newClient(t, Config{URL: am.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const unknown = "00000000-0000-4000-8000-000000000000"

	bad := testSilence()
	bad.StartsAt, bad.EndsAt = time.Now(), time.Now().Add(time.Hour)
	bad.Matchers = []Matcher{exact("bad-label", "x")}
	_, err := c.Create(ctx, bad)
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest || e.Retryable || e.Message == "" {
		t.Errorf("Create with an invalid label name: %v; want a permanent 400 with Alertmanager's reason", err)
	}
	t.Logf("Alertmanager's 400: %v", err)

	if _, err := c.Get(ctx, unknown); !errors.Is(err, ErrNotFound) || Retryable(err) {
		t.Errorf("Get of an unknown id: %v; want ErrNotFound", err)
	}
	if err := c.Expire(ctx, unknown); !errors.Is(err, ErrNotFound) || Retryable(err) {
		t.Errorf("Expire of an unknown id: %v; want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, "not-a-uuid"); !errors.As(err, &e) || e.StatusCode != http.StatusUnprocessableEntity || Retryable(err) {
		t.Errorf("Get of a malformed id: %v; want a permanent 422", err)
	}
}
