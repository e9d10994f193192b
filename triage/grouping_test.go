package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/amtriage/amtriage/view"
	"sort"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/webhook"
)

// groupAlert is one alert of a hand-built notification.
type groupAlert struct {
	labels  map[string]string
	summary string
}

// notification is a webhook body as Alertmanager sends it for one group.
func notification(t *testing.T, externalURL, receiver, groupKey string, common map[string]string, alerts ...groupAlert) []byte {
	t.Helper()
	started := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	var list []map[string]any
	for _, a := range alerts {
		list = append(list, map[string]any{
			"status": "firing", "labels": a.labels, "annotations": map[string]string{"summary": a.summary},
			"startsAt": started.Format(time.RFC3339Nano), "endsAt": "0001-01-01T00:00:00Z",
			"fingerprint": webhook.Fingerprint(a.labels),
		})
	}
	b, err := json.Marshal(map[string]any{
		"version": "4", "status": "firing", "receiver": receiver, "groupKey": groupKey, "truncatedAlerts": 0,
		"externalURL": externalURL, "commonLabels": common, "groupLabels": common, "alerts": list,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) drain() {
	h.t.Helper()
	if err := h.d.Pipeline().Drain(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// openByTitle lists the open incidents as "title: firing count", sorted.
func openByTitle(p *Pipeline) map[string]view.Incident {
	out := map[string]view.Incident{}
	for _, v := range p.OpenIncidents() {
		out[v.Title] = v
	}
	return out
}

func titles(m map[string]view.Incident) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Alerts that name no service, job or namespace are grouped by the
// Alertmanager group that sent them: unrelated groups never merge, and the
// incident keeps its identity across redeliveries and a restart.
func TestAlertsWithoutServiceAreGroupedByTheirAlertmanagerGroup(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	p := h.d.Pipeline()
	const amA, amB = "http://am-a.example:9093", "http://am-b.example:9093"
	disk := groupAlert{labels: map[string]string{"alertname": "DiskFull", "instance": "db1:9100"}, summary: "disk full on db1"}
	disk2 := groupAlert{labels: map[string]string{"alertname": "DiskFull", "instance": "db2:9100"}, summary: "disk full on db2"}
	disk3 := groupAlert{labels: map[string]string{"alertname": "DiskFull", "instance": "db3:9100"}, summary: "disk full on db3"}
	cpu := groupAlert{labels: map[string]string{"alertname": "CPUHigh", "instance": "web1:9100"}, summary: "cpu high on web1"}
	diskKey, cpuKey := `{}:{alertname="DiskFull"}`, `{}:{alertname="CPUHigh"}`
	h.mustPost(notification(t, amA, "amtriage", diskKey, map[string]string{"alertname": "DiskFull"}, disk), "")
	h.mustPost(notification(t, amA, "amtriage", cpuKey, map[string]string{"alertname": "CPUHigh"}, cpu), "")
	h.mustPost(notification(t, amB, "amtriage", diskKey, map[string]string{"alertname": "DiskFull"}, disk2), "")
	h.drain()
	open := openByTitle(p)
	want := []string{
		"INCIDENT: CPUHigh - cpu high on web1 since 03:00 UTC",
		"INCIDENT: DiskFull - disk full on db1 since 03:00 UTC",
		"INCIDENT: DiskFull - disk full on db2 since 03:00 UTC",
	}
	if got := titles(open); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("open incidents %q, want %q: one per Alertmanager group", got, want)
	}
	first := open[want[1]]
	if first.Service != "DiskFull" {
		t.Errorf("service %q, want the group's alertname DiskFull", first.Service)
	}
	// The same group again, with a second alert, after a restart of the book.
	p.restoreBook()
	h.mustPost(notification(t, amA, "amtriage", diskKey, map[string]string{"alertname": "DiskFull"}, disk, disk3), "")
	h.drain()
	open = openByTitle(p)
	if len(open) != 3 {
		t.Fatalf("after the redelivery: %q, want the same three incidents", titles(open))
	}
	if got := open[want[1]]; got.ID != first.ID || got.AlertsFiring != 2 {
		t.Errorf("DiskFull of %s: id %s with %d firing, want %s with 2", amA, got.ID, got.AlertsFiring, first.ID)
	}
}

// A complete notification resolves by absence only the members of the group
// it speaks for: externalURL + receiver + groupKey. Another Alertmanager's
// notification of a group with the same key resolves nothing of it.
func TestAbsenceIsScopedToTheAlertmanagerAndReceiver(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	p := h.d.Pipeline()
	const amA, amB, key = "http://am-a.example:9093", "http://am-b.example:9093", `{}:{alertname="HighErrorRate"}`
	common := map[string]string{"alertname": "HighErrorRate", "service": "api"}
	alert := func(pod string) groupAlert {
		return groupAlert{labels: map[string]string{"alertname": "HighErrorRate", "service": "api", "pod": pod}, summary: "errors"}
	}
	firing := func() int {
		t.Helper()
		open := p.OpenIncidents()
		if len(open) != 1 {
			t.Fatalf("open incidents %+v, want the one of api", open)
		}
		return open[0].AlertsFiring
	}
	steps := []struct {
		what   string
		body   []byte
		firing int
	}{
		{"A sends a1", notification(t, amA, "amtriage", key, common, alert("a1")), 1},
		{"B sends b1 in a group of the same key", notification(t, amB, "amtriage", key, common, alert("b1")), 2},
		{"A's other receiver sends c1", notification(t, amA, "other", key, common, alert("c1")), 3},
		{"A sends a2 but not a1: a1 resolved", notification(t, amA, "amtriage", key, common, alert("a2")), 3},
		{"restart", nil, 3},
		{"B sends b2 but not b1: b1 resolved", notification(t, amB, "amtriage", key, common, alert("b2")), 3},
		{"A's other receiver sends nothing of c1: c1 resolved", notification(t, amA, "other", key, common, alert("a2")), 2},
	}
	for _, s := range steps {
		if s.body == nil {
			p.restoreBook()
		} else {
			h.mustPost(s.body, "")
			h.drain()
		}
		if got := firing(); got != s.firing {
			t.Fatalf("%s: %d firing, want %d", s.what, got, s.firing)
		}
	}
}

// A schema 2 store's alerts know their groupKey alone. They are read as
// they are, scoped to no Alertmanager: a complete notification of a group
// with that key resolves none of them until they are delivered again (then
// they are scoped to their sender); staleness still applies meanwhile.
func TestSchema2AlertsAreScopedOnTheirNextDelivery(t *testing.T) {
	dir := t.TempDir()
	const am, key = "http://am-a.example:9093", `{}:{alertname="HighErrorRate"}`
	common := map[string]string{"alertname": "HighErrorRate", "service": "api"}
	alert := func(pod string) groupAlert {
		return groupAlert{labels: map[string]string{"alertname": "HighErrorRate", "service": "api", "pod": pod}, summary: "errors"}
	}
	clock := time.Date(2026, 11, 23, 3, 10, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	sp := openSwitchPipeline(t, dir, now)
	sp.receive(notification(t, am, "amtriage", key, common, alert("old")), clock)
	if err := sp.p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Rewrite the records as schema 2 had them: no externalURL, no receiver.
	if err := sp.store.RawState().Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltstore.BucketAlerts)
		var keys, vals [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			var rec map[string]any
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec["externalURL"] != am || rec["receiver"] != "amtriage" {
				return fmt.Errorf("stored alert %s without its scope: %s", k, v)
			}
			delete(rec, "externalURL")
			delete(rec, "receiver")
			nv, err := json.Marshal(rec)
			keys, vals = append(keys, append([]byte(nil), k...)), append(vals, nv)
			return err
		}); err != nil {
			return err
		}
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return tx.Bucket(boltstore.BucketMeta).Put(boltstore.KeySchema, []byte("2"))
	}); err != nil {
		t.Fatal(err)
	}
	sp.close()

	sp = openSwitchPipeline(t, dir, now)
	defer sp.close()
	var schema string
	_ = sp.store.RawState().View(func(tx *bolt.Tx) error {
		schema = string(tx.Bucket(boltstore.BucketMeta).Get(boltstore.KeySchema))
		return nil
	})
	if schema != boltstore.SchemaVersion {
		t.Errorf("schema %q after opening a schema 2 store, want %q", schema, boltstore.SchemaVersion)
	}
	steps := []struct {
		what   string
		alerts []groupAlert
		firing int
	}{
		{"the group without the old alert: it is not resolved", []groupAlert{alert("new")}, 2},
		{"the old alert delivered again", []groupAlert{alert("old"), alert("new")}, 2},
		{"the group without it now: resolved", []groupAlert{alert("new")}, 1},
	}
	for _, s := range steps {
		clock = clock.Add(time.Minute)
		sp.receive(notification(t, am, "amtriage", key, common, s.alerts...), clock)
		if err := sp.p.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		open := sp.p.OpenIncidents()
		if len(open) != 1 || open[0].AlertsFiring != s.firing {
			t.Fatalf("%s: %+v, want one incident with %d firing", s.what, open, s.firing)
		}
	}
}
