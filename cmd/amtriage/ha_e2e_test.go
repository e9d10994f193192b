package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/amtest"
	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/store/pgstore"
)

// Two replicas on one PostgreSQL, the real Alertmanager sending every
// notification to both: 20 Sev 1 incidents arrive as a storm of 200
// notifications and the leader is killed with SIGKILL while it delivers.
// The survivor leads within 10 s with every acknowledged alert, and each
// incident is paged, posted and annotated exactly once; the killed replica
// comes back as a standby that delivers nothing.
func TestHAKillLeaderMidStorm(t *testing.T) {
	amtest.Binary(t)
	const services, alertnames = 20, 10 // a group per (alertname, service): 200 notifications
	e := newHAEnv(t, pgtest.WithoutFsync())
	a := e.newReplica(t, "a", e.dsn).start(t)
	waitFor(t, 15*time.Second, "a leads", a.leading)
	b := e.newReplica(t, "b", e.dsn).start(t)
	hookA, hookB := newWebhookTap(t, a.addr), newWebhookTap(t, b.addr)
	am := amtest.Start(t, amtest.Config{WebhookURL: hookA.URL(), MoreWebhookURLs: []string{hookB.URL()},
		GroupWait: 100 * time.Millisecond, GroupInterval: time.Second})
	// Slow receivers: the kill lands while deliveries are in flight.
	for _, tp := range a.taps {
		tp.delay.Store(int64(100 * time.Millisecond))
	}

	started := time.Now().Add(-time.Minute).Truncate(time.Millisecond) // older than group_wait: flushed at once
	var alerts []amtest.Alert
	for s := range services {
		svc := fmt.Sprintf("svc-%02d", s)
		for n := range alertnames {
			alerts = append(alerts, amtest.Alert{
				Labels:      map[string]string{"alertname": fmt.Sprintf("Errors%d", n), "service": svc, "severity": "critical"},
				Annotations: map[string]string{"error_ratio": "62%", "summary": svc + " failing"}, StartsAt: started})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the leader paging", func() bool { return len(e.pd.Events()) >= 3 })
	pagedBefore := len(e.pd.Events())
	if err := a.kill(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: clean exit")
	}
	killed := time.Now()
	t.Logf("killed the leader after %d pages, %d notifications acknowledged by it", pagedBefore, hookA.posts.Load())

	waitFor(t, 10*time.Second, "the survivor leads within 10 s", b.leading)
	t.Logf("b leads %s after the kill", time.Since(killed).Round(time.Millisecond))

	acked := hookA.ackedAlerts()
	for k := range hookB.ackedAlerts() {
		acked[k] = true
	}
	firing := func() map[string]bool {
		got := map[string]bool{}
		for _, inc := range b.incidents() {
			for _, al := range inc.Alerts {
				if al.Status == "firing" {
					got[alertID(inc.Service, al.Alertname)] = true
				}
			}
		}
		return got
	}
	waitFor(t, 20*time.Second, "every alert on the survivor", func() bool { return len(firing()) == services*alertnames })
	got := firing()
	for k := range acked {
		if !got[k] {
			t.Errorf("alert %s was acknowledged but is not on the survivor", k)
		}
	}
	if n := len(b.incidents()); n != services {
		t.Errorf("%d incidents on the survivor, want %d", n, services)
	}

	complete := func() bool {
		states, _ := pageStates(e.pd)
		return len(states) >= services && len(e.slack.CreatedChannels()) >= services &&
			len(e.slack.Messages("#incidents")) >= services && len(e.grafana.Annotations()) >= services
	}
	waitFor(t, 30*time.Second, "every incident paged, posted and annotated", complete)
	waitProcessed(t, b.daemon)
	time.Sleep(500 * time.Millisecond) // let a duplicate show up
	checkOncePerIncident(t, e, services, false)

	// Resolve: one resolve per page, and each annotation becomes a region.
	if err := am.PostAlerts(ctx, amtest.Resolve(alerts)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every page resolved and every region closed", func() bool {
		if len(e.pd.OpenAlerts()) != 0 {
			return false
		}
		for _, an := range e.grafana.Annotations() {
			if !an.IsRegion() {
				return false
			}
		}
		return true
	})
	waitProcessed(t, b.daemon)
	time.Sleep(500 * time.Millisecond)
	checkOncePerIncident(t, e, services, true)

	// The killed replica comes back as a standby: Alertmanager catches up
	// with it (its retries now succeed) and it delivers nothing.
	before := len(e.log.by(""))
	pdBefore, slackBefore, grafanaBefore := len(e.pd.Events()), len(e.slack.Calls()), len(e.grafana.Requests())
	hookBefore := hookA.posts.Load()
	restarted := time.Now() // what a's tap saw before is the killed process's last sends
	a.start(t)
	// Alertmanager retries a failing webhook with a growing backoff.
	waitFor(t, 60*time.Second, "Alertmanager delivering to the restarted replica", func() bool { return hookA.posts.Load() > hookBefore })
	time.Sleep(3 * time.Second) // up a while: several lease intervals
	if a.leading() || !b.leading() {
		t.Errorf("after the restart a leads: %v, b leads: %v; want b to keep the lead", a.leading(), b.leading())
	}
	waitProcessed(t, b.daemon)
	if n := len(e.log.by("a")) - countBefore(e.log.by("a"), restarted); n != 0 {
		t.Errorf("the restarted standby made %d deliveries, want 0", n)
	}
	if pd, sl, gr := len(e.pd.Events()), len(e.slack.Calls()), len(e.grafana.Requests()); pd != pdBefore || sl != slackBefore || gr != grafanaBefore {
		t.Errorf("after the restart PagerDuty %d→%d events, Slack %d→%d calls, Grafana %d→%d requests; want no change",
			pdBefore, pd, slackBefore, sl, grafanaBefore, gr)
	}
	t.Logf("%d deliveries in all (%d before the restart)", len(e.log.by("")), before)
}

// countBefore counts the deliveries before t.
func countBefore(ds []delivery, t time.Time) int {
	n := 0
	for _, d := range ds {
		if d.At.Before(t) {
			n++
		}
	}
	return n
}

// checkOncePerIncident: one PagerDuty dedup key per incident with one
// trigger (and, once resolved, one resolve), one Sev 1 channel with the
// declaration and the incident message, one announcement, one Grafana
// annotation (a region once resolved).
func checkOncePerIncident(t *testing.T, e *haEnv, incidents int, resolved bool) {
	t.Helper()
	// PagerDuty: one alert per incident, every trigger of a key the same
	// incident state. An event whose answer the killed leader never
	// acknowledged is delivered again by its successor (PagerDuty folds
	// the repeat into the alert by dedup key): at most once per replica.
	states, services := pageStates(e.pd)
	if len(states) != incidents {
		t.Errorf("%d PagerDuty dedup keys, want %d", len(states), incidents)
	}
	if n := len(e.pd.Alerts()); n != incidents {
		t.Errorf("%d PagerDuty alerts, want %d", n, incidents)
	}
	seen := map[string]string{}
	for key, st := range states {
		if len(st) != 1 {
			t.Errorf("dedup key %s (%s): triggers of %d incident states %v, want 1", key, services[key], len(st), st)
		}
		if other, dup := seen[services[key]]; dup {
			t.Errorf("%s paged under two dedup keys: %s and %s", services[key], other, key)
		}
		seen[services[key]] = key
		if r := len(e.pd.Resolves(key)); resolved && r < 1 {
			t.Errorf("dedup key %s (%s): not resolved", key, services[key])
		}
	}
	for replica, keys := range e.log.triggersBy() {
		for key, n := range keys {
			if n != 1 {
				t.Errorf("replica %s triggered %s (%s) %d times, want once", replica, key, services[key], n)
			}
		}
	}
	for _, al := range e.pd.Alerts() {
		if want := map[bool]string{false: "triggered", true: "resolved"}[resolved]; al.Status != want {
			t.Errorf("PagerDuty alert %s: %s, want %s", al.DedupKey, al.Status, want)
		}
	}
	created := e.slack.CreatedChannels()
	if len(created) != incidents {
		t.Errorf("%d Sev 1 channels, want %d", len(created), incidents)
	}
	for _, c := range created {
		if n := len(e.slack.Messages(c.ID)); n != 2 {
			t.Errorf("%s: %d messages, want the declaration and the incident message", c.Name, n)
		}
	}
	if n := len(e.slack.Messages("#incidents")); n != incidents {
		t.Errorf("%d announcements in #incidents, want %d", n, incidents)
	}
	// Top-level posts: the declaration, the incident message and the
	// announcement; the resolve adds one reply in the incident's thread.
	top, replies := 0, map[string]int{}
	for _, m := range e.slack.AllMessages() {
		if m.ThreadTS == "" {
			top++
		} else {
			replies[m.Channel+"/"+m.ThreadTS]++
		}
	}
	if top != 3*incidents {
		t.Errorf("%d top-level Slack messages, want 3 per incident (%d)", top, 3*incidents)
	}
	for parent, n := range replies {
		if n != 1 {
			t.Errorf("%d replies in thread %s, want 1", n, parent)
		}
	}
	if want := map[bool]int{false: 0, true: incidents}[resolved]; len(replies) != want {
		t.Errorf("%d threads with replies, want %d", len(replies), want)
	}
	tags := map[string]int{}
	for _, an := range e.grafana.Annotations() {
		i := slices.IndexFunc(an.Tags, func(s string) bool { return strings.HasPrefix(s, "incident:") })
		if i < 0 {
			t.Errorf("annotation %d has no incident tag: %v", an.ID, an.Tags)
			continue
		}
		tags[an.Tags[i]]++
		if resolved && !an.IsRegion() {
			t.Errorf("annotation %d (%v) is not a region after the resolve", an.ID, an.Tags)
		}
	}
	if len(tags) != incidents {
		t.Errorf("annotations for %d incidents, want %d", len(tags), incidents)
	}
	for tag, n := range tags {
		if n != 1 {
			t.Errorf("%d annotations tagged %s, want 1", n, tag)
		}
	}
}

// A rolling update while alerts keep coming: with b leading, a is replaced
// (SIGTERM, a new process), then b is stopped so that a leads: the graceful
// stop releases the lease, so a leads at once, not a lease TTL later. Every
// alert a replica acknowledged is paged, exactly once.
func TestHARollingUpdate(t *testing.T) {
	e := newHAEnv(t, pgtest.WithoutFsync())
	b := e.newReplica(t, "b", e.dsn).start(t)
	waitFor(t, 15*time.Second, "b leads", b.leading)
	a := e.newReplica(t, "a", e.dsn).start(t)

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var sender sync.WaitGroup
	sender.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			svc := fmt.Sprintf("roll-%03d", i)
			// As Alertmanager retries: until a replica acknowledges it.
			for try := 0; ; try++ {
				r := []*replica{a, b}[(i+try)%2]
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				code, err := post(ctx, r.url("/webhook"), "", sev1Webhook(svc))
				cancel()
				if err == nil && code == 200 {
					mu.Lock()
					acked = append(acked, svc)
					mu.Unlock()
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	sent := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, 10*time.Second, "b paging", func() bool { return len(e.pd.Events()) >= 3 })

	if err := a.kill(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM a: %v", err)
	}
	a.start(t)
	if a.leading() {
		t.Fatal("the new a leads while b does")
	}
	from := sent()
	waitFor(t, 10*time.Second, "alerts acknowledged after a's replacement", func() bool { return sent() >= from+5 })

	if err := b.kill(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM b: %v", err)
	}
	stopped := time.Now()
	// Released, not expired: well under the 5 s lease.
	waitFor(t, 3*time.Second, "a leads after b's graceful stop", a.leading)
	t.Logf("a leads %s after b stopped", time.Since(stopped).Round(time.Millisecond))
	b.start(t)
	from = sent()
	waitFor(t, 10*time.Second, "alerts acknowledged after the update", func() bool { return sent() >= from+5 })
	close(stop)
	sender.Wait()

	mu.Lock()
	want := append([]string(nil), acked...)
	mu.Unlock()
	waitFor(t, 30*time.Second, "every acknowledged alert paged", func() bool { return len(e.pd.Alerts()) >= len(want) })
	waitProcessed(t, a.daemon)
	time.Sleep(500 * time.Millisecond) // let a duplicate show up
	states, services := pageStates(e.pd)
	paged := map[string]int{}
	for key := range states {
		paged[services[key]]++
		if n := len(e.pd.Triggers(key)); n != 1 {
			t.Errorf("%s (%s): %d triggers across the rolling update, want 1", key, services[key], n)
		}
	}
	for _, svc := range want {
		if paged[svc] != 1 {
			t.Errorf("%s acknowledged, paged under %d dedup keys; want 1", svc, paged[svc])
		}
	}
	if len(paged) != len(want) {
		t.Errorf("%d services paged, %d acknowledged", len(paged), len(want))
	}
	t.Logf("%d alerts acknowledged and paged through the update", len(want))
}

// A partition at the process level: the leader a reaches PostgreSQL through
// a proxy, which cuts it off (connections reset) or stalls it (packets
// dropped, transactions left open) while a holds a page PagerDuty keeps
// refusing and webhooks keep it committing. a stops delivering before b's
// term begins (no delivery by a after it), the database accepted no write
// of a's after b took over (an audit trigger records every committed write
// with its writer), and once the link is back a is a standby.
func TestHAPartitionedLeaderStopsBeforeTheStandbyLeads(t *testing.T) {
	for _, tt := range []struct {
		name      string
		partition func(*pgtest.Proxy)
	}{
		{"cut", (*pgtest.Proxy).Cut},
		{"stall", (*pgtest.Proxy).Stall},
	} {
		t.Run(tt.name, func(t *testing.T) { testPartition(t, tt.partition) })
	}
}

func testPartition(t *testing.T, partition func(*pgtest.Proxy)) {
	e := newHAEnv(t, pgtest.WithoutFsync())
	proxy := pgtest.NewProxy(t, e.pg.Addr())
	a := e.newReplica(t, "a", withReplicaTag(pgtest.WithAddr(e.dsn, proxy.Addr()), "a")).start(t)
	waitFor(t, 15*time.Second, "a leads", a.leading)
	installAudit(t, e.dsn)
	b := e.newReplica(t, "b", withReplicaTag(e.dsn, "b")).start(t)
	postTo := func(r *replica, svc string) {
		t.Helper()
		if code, err := post(context.Background(), r.url("/webhook"), "", sev1Webhook(svc)); err != nil || code != 200 {
			t.Fatalf("post %s to %s: %d %v", svc, r.name, code, err)
		}
	}
	for i := range 3 {
		postTo(b, fmt.Sprintf("before-%d", i)) // the standby's intake, the leader's pages
	}
	waitFor(t, 15*time.Second, "a pages what b took", func() bool { return len(e.pd.Alerts()) == 3 })

	// a holds a page it cannot deliver, and retries it.
	a.taps["pagerduty"].refuse.Store(true)
	postTo(b, "held")
	waitFor(t, 10*time.Second, "PagerDuty refusing a's page", func() bool {
		for _, d := range e.log.by("a") {
			if d.Refused {
				return true
			}
		}
		return false
	})
	// Keep a committing: webhooks to it right up to the partition.
	stop := make(chan struct{})
	var sender sync.WaitGroup
	for w := range 4 {
		sender.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				post(ctx, a.url("/webhook"), "", sev1Webhook(fmt.Sprintf("flood-%d", w))) // one incident per worker
				cancel()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	partition(proxy)
	cut := time.Now()
	var during []string
	sender.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			svc := fmt.Sprintf("during-%02d", i)
			if code, err := post(context.Background(), b.url("/webhook"), "", sev1Webhook(svc)); err == nil && code == 200 {
				during = append(during, svc)
			}
		}
	})
	waitFor(t, 15*time.Second, "b leads", b.leading)
	t.Logf("b leads %s after the cut", time.Since(cut).Round(time.Millisecond))
	waitFor(t, 15*time.Second, "b pages the held incident", func() bool {
		_, services := pageStates(e.pd)
		for _, s := range services {
			if s == "held" {
				return true
			}
		}
		return false
	})

	a.taps["pagerduty"].refuse.Store(false) // a delivery by a would now get through
	proxy.Restore()
	restored := time.Now()
	waitFor(t, 15*time.Second, "a back, ready", func() bool {
		resp, err := httpClient.Get(a.url("/readyz"))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	time.Sleep(3 * time.Second) // several lease intervals with the link back
	close(stop)
	sender.Wait()
	if a.leading() || !b.leading() {
		t.Errorf("after the restore a leads: %v, b leads: %v; want a standby", a.leading(), b.leading())
	}
	waitFor(t, 20*time.Second, "every incident paged", func() bool { return len(e.pd.Alerts()) == 8+len(during) })

	// When a's term ended (its deliveries cut off, its writes fenced);
	// its cleanup ("stopped leading") may finish later on a loaded machine.
	aStopped, ok := a.logTime("leader election: this replica's term is over")
	if !ok {
		t.Fatal("a never logged the end of its term")
	}
	bLeads, ok := b.logTime("leader election: this replica leads")
	if !ok {
		t.Fatal("b never logged its term")
	}
	t.Logf("a stopped %s after the cut, b leads %s after a stopped, restored %s after the cut",
		aStopped.Sub(cut).Round(time.Millisecond), bLeads.Sub(aStopped).Round(time.Millisecond), restored.Sub(cut).Round(time.Millisecond))
	if !aStopped.Before(bLeads) {
		t.Errorf("a stopped leading at %s, after b began at %s: two leaders", aStopped.Format(time.StampMicro), bLeads.Format(time.StampMicro))
	}
	for _, d := range e.log.by("a") {
		if !d.At.Before(bLeads) {
			t.Errorf("a delivered to %s at %s, after b's term began (%s)", d.Receiver, d.At.Format(time.StampMicro), bLeads.Format(time.StampMicro))
		}
	}
	for _, d := range e.log.by("b") {
		if d.At.Before(bLeads) {
			t.Errorf("b delivered to %s at %s, before its term began (%s)", d.Receiver, d.At.Format(time.StampMicro), bLeads.Format(time.StampMicro))
		}
	}
	// The database accepted writes of a's only while a held the lease.
	holders := map[string]string{"a": fmt.Sprintf("-%d-", a.cmd.Process.Pid), "b": fmt.Sprintf("-%d-", b.cmd.Process.Pid)}
	audit := readAudit(t, e.dsn)
	var aWrites, bWrites int
	var aEpoch int64
	for _, w := range audit {
		if !strings.Contains(w.Holder, holders[w.Replica]) {
			t.Errorf("%s %s by %q committed while the lease was %s's (epoch %d)", w.Op, w.Table, w.Replica, w.Holder, w.Epoch)
		}
		switch w.Replica {
		case "a":
			aWrites++
			aEpoch = w.Epoch
			if !w.At.Before(bLeads) {
				t.Errorf("%s %s by a committed at %s, after b's term began", w.Op, w.Table, w.At.Format(time.StampMicro))
			}
		case "b":
			bWrites++
		}
	}
	if aWrites == 0 || bWrites == 0 {
		t.Fatalf("audit: %d writes by a, %d by b; want both leaders' writes recorded", aWrites, bWrites)
	}
	// A late write at a's epoch, had one reached the database: fenced.
	if err := fencedAt(t, e.dsn, aEpoch); !errors.Is(err, pgstore.ErrDeposed) {
		t.Errorf("a write at a's epoch %d after the takeover: %v, want ErrDeposed", aEpoch, err)
	}
	t.Logf("audit: %d writes by a (epoch %d), %d by b", aWrites, aEpoch, bWrites)
}
