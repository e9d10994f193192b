package triage

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
)

const payloadDir = "testdata/payloads"

// readPayload returns one of the fixtures a real Alertmanager sent.
func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(payloadDir, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// payloadFiles lists every fixture; the test fails if there are none, so a
// moved directory cannot make the fixture tests pass vacuously.
func payloadFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(payloadDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("expected at least 5 fixtures in %s, found %d", payloadDir, len(files))
	}
	return files
}

// editPayload decodes a fixture into generic JSON, lets edit change it and
// re-encodes it: for building near-valid bodies from real ones.
func editPayload(t testing.TB, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readPayload(t, name), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstAlert(m map[string]any) map[string]any {
	return m["alerts"].([]any)[0].(map[string]any)
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestDecodeMessageAllFixtures(t *testing.T) {
	for _, f := range payloadFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeMessage(body)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if m.Version != "4" || m.GroupKey == "" || len(m.Alerts) == 0 {
				t.Fatalf("version=%q groupKey=%q alerts=%d", m.Version, m.GroupKey, len(m.Alerts))
			}
			for i, a := range m.Alerts {
				if a.Fingerprint == "" || a.StartsAt.IsZero() || (a.Status != "firing" && a.Status != "resolved") {
					t.Errorf("alert %d: fingerprint=%q startsAt=%v status=%q", i, a.Fingerprint, a.StartsAt, a.Status)
				}
				// Our derivation must agree with Alertmanager's on every real alert:
				// a sender that omits the fingerprint gets the same identity.
				if got := fingerprint(a.Labels); got != a.Fingerprint {
					t.Errorf("alert %d: derived fingerprint %s, Alertmanager sent %s", i, got, a.Fingerprint)
				}
			}
		})
	}
}

func TestDecodeMessageFixtureFields(t *testing.T) {
	type alertWant struct {
		status, fingerprint, startsAt, endsAt string
	}
	tests := []struct {
		file            string
		receiver        string
		status          string
		groupKey        string
		truncatedAlerts uint64
		alerts          []alertWant
	}{
		{
			file:            "01-firing-group-max_alerts-truncated.json",
			receiver:        "triage",
			status:          "firing",
			groupKey:        `{}:{alertname="HighErrorRate", namespace="shop", service="api"}`,
			truncatedAlerts: 1,
			alerts: []alertWant{
				{"firing", "4dbfc38214eb5646", "2026-11-23T19:20:45.565975Z", ""},
				{"firing", "9a93212a859754db", "2026-11-23T19:20:45.565975Z", ""},
			},
		},
		{
			file:            "03-firing-mixed-with-resolved.json",
			receiver:        "triage-full",
			status:          "firing",
			groupKey:        `{}/{namespace="payments"}:{alertname="PaymentGatewayErrors", namespace="payments", service="payments-api"}`,
			truncatedAlerts: 0,
			alerts: []alertWant{
				{"resolved", "83aed99e7273fc8b", "2026-11-23T19:23:05.984528Z", "2026-11-23T19:23:38.989156Z"},
				{"firing", "f115acc3330bbc72", "2026-11-23T19:23:05.984528Z", ""},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := DecodeMessage(readPayload(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if m.Version != "4" {
				t.Errorf("version = %q", m.Version)
			}
			if m.Receiver != tc.receiver || m.Status != tc.status {
				t.Errorf("receiver/status = %q/%q, want %q/%q", m.Receiver, m.Status, tc.receiver, tc.status)
			}
			if m.GroupKey != tc.groupKey {
				t.Errorf("groupKey = %q, want %q", m.GroupKey, tc.groupKey)
			}
			if m.TruncatedAlerts != tc.truncatedAlerts {
				t.Errorf("truncatedAlerts = %d, want %d", m.TruncatedAlerts, tc.truncatedAlerts)
			}
			if len(m.Alerts) != len(tc.alerts) {
				t.Fatalf("alerts = %d, want %d", len(m.Alerts), len(tc.alerts))
			}
			for i, w := range tc.alerts {
				a := m.Alerts[i]
				if a.Status != w.status || a.Fingerprint != w.fingerprint {
					t.Errorf("alert %d: status/fingerprint = %s/%s, want %s/%s", i, a.Status, a.Fingerprint, w.status, w.fingerprint)
				}
				if want := mustTime(t, w.startsAt); !a.StartsAt.Equal(want) {
					t.Errorf("alert %d: startsAt = %v, want %v", i, a.StartsAt, want)
				}
				if w.endsAt == "" {
					if !a.EndsAt.IsZero() {
						t.Errorf("alert %d: firing alert endsAt = %v, want zero", i, a.EndsAt)
					}
				} else if want := mustTime(t, w.endsAt); !a.EndsAt.Equal(want) {
					t.Errorf("alert %d: endsAt = %v, want %v", i, a.EndsAt, want)
				}
			}
			if got := m.Alerts[0].Labels["alertname"]; got == "" {
				t.Errorf("labels not decoded: %v", m.Alerts[0].Labels)
			}
		})
	}
}

func TestDecodeMessageTolerantOfNewerFields(t *testing.T) {
	body := editPayload(t, "02-firing-single-warning.json", func(m map[string]any) {
		m["notification_reason"] = "group_interval"
		m["routeLabels"] = map[string]any{"team": "shop"}
		m["someFutureField"] = map[string]any{"nested": []any{1, "two", nil}}
		firstAlert(m)["anotherFutureField"] = true
	})
	m, err := DecodeMessage(body)
	if err != nil {
		t.Fatalf("DecodeMessage rejected newer Alertmanager fields: %v", err)
	}
	if m.NotificationReason != "group_interval" || m.RouteLabels["team"] != "shop" {
		t.Errorf("notification_reason=%q routeLabels=%v", m.NotificationReason, m.RouteLabels)
	}
	if len(m.Alerts) != 1 || m.Alerts[0].Fingerprint != "fb66a0468a84294f" {
		t.Errorf("alerts = %+v", m.Alerts)
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	const ts = `"2026-11-23T19:22:45Z"`
	alert := func(fields string) string {
		return `{"version":"4","status":"firing","alerts":[{` + fields + `}]}`
	}
	tests := []struct {
		name string
		body string
		want []string // substrings of the message, lower case
	}{
		{"malformed JSON", `{"version":"4",`, []string{"malformed json"}},
		{"malformed JSON syntax", `{"version" "4"}`, []string{"malformed json"}},
		{"trailing garbage", `{"version":"4","alerts":[]} garbage`, []string{"trailing"}},
		{"trailing second object", `{"version":"4","alerts":[]}{"version":"4"}`, []string{"trailing"}},
		{"empty body", ``, []string{"empty body"}},
		{"whitespace body", " \n\t", []string{"empty body"}},
		{"not an object", `[]`, []string{"expected"}},
		{"version missing", `{"status":"firing","alerts":[]}`, []string{"version", "missing"}},
		{"version 3", `{"version":"3","status":"firing","alerts":[]}`, []string{"version", `"3"`}},
		{"version as number", `{"version":4,"alerts":[]}`, []string{"version"}},
		{"status bogus", `{"version":"4","status":"bogus","alerts":[]}`, []string{"status", "bogus"}},
		{"alert status bogus", alert(`"status":"bogus","labels":{},"startsAt":` + ts), []string{"alerts[0].status", "bogus"}},
		{"alert status missing", alert(`"labels":{},"startsAt":` + ts), []string{"alerts[0].status"}},
		{"labels as a list", alert(`"status":"firing","labels":["alertname","x"],"startsAt":` + ts), []string{"labels"}},
		{"label value not a string", alert(`"status":"firing","labels":{"a":1},"startsAt":` + ts), []string{"labels"}},
		{"startsAt yesterday", alert(`"status":"firing","labels":{},"startsAt":"yesterday"`), []string{"timestamp", "yesterday"}},
		{"startsAt a number", alert(`"status":"firing","labels":{},"startsAt":12`), []string{"timestamp"}},
		{"endsAt garbage", alert(`"status":"firing","labels":{},"startsAt":` + ts + `,"endsAt":"soon"`), []string{"timestamp", "soon"}},
		{"startsAt missing", alert(`"status":"firing","labels":{}`), []string{"alerts[0].startsat", "missing"}},
		{"startsAt zero", alert(`"status":"firing","labels":{},"startsAt":"0001-01-01T00:00:00Z"`), []string{"alerts[0].startsat"}},
		{"truncatedAlerts negative", `{"version":"4","truncatedAlerts":-1,"alerts":[]}`, []string{"truncatedalerts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tc.body))
			if err == nil {
				t.Fatalf("accepted %q: %+v", tc.body, m)
			}
			if m != nil {
				t.Errorf("returned a message along with the error")
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InputError", err, err)
			}
			msg := strings.ToLower(err.Error())
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// The message goes to Alertmanager's log: it speaks JSON, not Go.
			if strings.Contains(err.Error(), "Data.") || strings.Contains(err.Error(), "triage.") || strings.Contains(err.Error(), "template.") {
				t.Errorf("error %q names Go types instead of JSON fields", err)
			}
		})
	}
}

func TestDecodeMessageDerivesMissingFingerprint(t *testing.T) {
	// Fixture 02 without its fingerprint: the derived one must be the one
	// Alertmanager computed for the same labels.
	const amFingerprint = "fb66a0468a84294f"
	body := editPayload(t, "02-firing-single-warning.json", func(m map[string]any) {
		delete(firstAlert(m), "fingerprint")
	})
	if strings.Contains(string(body), amFingerprint) {
		t.Fatal("test setup: fingerprint still in the body")
	}
	m, err := DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Alerts[0].Fingerprint; got != amFingerprint {
		t.Errorf("derived fingerprint %q, Alertmanager's is %q", got, amFingerprint)
	}
	// Stable: the same labels in another order give the same fingerprint.
	again, err := DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if again.Alerts[0].Fingerprint != m.Alerts[0].Fingerprint {
		t.Errorf("fingerprint not stable: %s vs %s", again.Alerts[0].Fingerprint, m.Alerts[0].Fingerprint)
	}
	reordered := `{"version":"4","alerts":[{"status":"firing","startsAt":"2026-11-23T19:22:45Z","labels":{
		"severity":"warning","service":"checkout","namespace":"shop","job":"checkout","cluster":"prod-eu1","alertname":"HighLatencyP99"}}]}`
	r, err := DecodeMessage([]byte(reordered))
	if err != nil {
		t.Fatal(err)
	}
	if r.Alerts[0].Fingerprint != amFingerprint {
		t.Errorf("reordered labels: fingerprint %q, want %q", r.Alerts[0].Fingerprint, amFingerprint)
	}
	// Different labels, different fingerprint.
	other := strings.Replace(reordered, `"warning"`, `"critical"`, 1)
	o, err := DecodeMessage([]byte(other))
	if err != nil {
		t.Fatal(err)
	}
	if o.Alerts[0].Fingerprint == amFingerprint {
		t.Error("different labels got the same fingerprint")
	}
	// A fingerprint that was sent is kept as sent.
	sent, err := DecodeMessage(readPayload(t, "02-firing-single-warning.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sent.Alerts[0].Fingerprint != amFingerprint {
		t.Errorf("sent fingerprint changed to %q", sent.Alerts[0].Fingerprint)
	}
}

func TestOccurrenceKey(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 19, 20, 45, 565975000, time.UTC)
	base := template.Alert{Fingerprint: "4dbfc38214eb5646", StartsAt: t0}
	later := base
	later.StartsAt = t0.Add(time.Hour)
	nanos := base
	nanos.StartsAt = t0.Add(time.Nanosecond)
	otherFP := base
	otherFP.Fingerprint = "9a93212a859754db"
	sameInstantOtherZone := base
	sameInstantOtherZone.StartsAt = t0.In(time.FixedZone("CET", 3600))
	resolved := base
	resolved.Status, resolved.EndsAt = "resolved", t0.Add(time.Minute)

	k := OccurrenceKey(&base)
	if k == "" {
		t.Fatal("empty key")
	}
	for name, a := range map[string]*template.Alert{"startsAt +1h": &later, "startsAt +1ns": &nanos, "other fingerprint": &otherFP} {
		if OccurrenceKey(a) == k {
			t.Errorf("%s: same key %q as the original occurrence", name, k)
		}
	}
	// The same occurrence, whatever zone it is written in and whatever its status.
	for name, a := range map[string]*template.Alert{"other zone": &sameInstantOtherZone, "resolved": &resolved} {
		if got := OccurrenceKey(a); got != k {
			t.Errorf("%s: key %q, want %q", name, got, k)
		}
	}
}
