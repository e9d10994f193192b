package webhook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/internal/payloads"
)

func TestDecodeMessageAllFixtures(t *testing.T) {
	for _, f := range payloads.Files(t) {
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
				if got := Fingerprint(a.Labels); got != a.Fingerprint {
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
			m, err := DecodeMessage(payloads.Read(t, tc.file))
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
				if want := payloads.MustTime(t, w.startsAt); !a.StartsAt.Equal(want) {
					t.Errorf("alert %d: startsAt = %v, want %v", i, a.StartsAt, want)
				}
				if w.endsAt == "" {
					if !a.EndsAt.IsZero() {
						t.Errorf("alert %d: firing alert endsAt = %v, want zero", i, a.EndsAt)
					}
				} else if want := payloads.MustTime(t, w.endsAt); !a.EndsAt.Equal(want) {
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
	body := payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) {
		m["notification_reason"] = "group_interval"
		m["routeLabels"] = map[string]any{"team": "shop"}
		m["someFutureField"] = map[string]any{"nested": []any{1, "two", nil}}
		payloads.FirstAlert(m)["anotherFutureField"] = true
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
	body := payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) {
		delete(payloads.FirstAlert(m), "fingerprint")
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
	sent, err := DecodeMessage(payloads.Read(t, "02-firing-single-warning.json"))
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

// Every limit of the store and the encoder is checked at intake: what is
// over it is refused naming the field, what is at it is accepted.
func TestDecodeMessageLimits(t *testing.T) {
	const ts = `"2026-11-23T19:22:45Z"`
	body := func(alert string) string {
		return `{"version":"4","status":"firing","groupKey":"g","alerts":[` + alert + `]}`
	}
	firing := func(extra string) string {
		return body(`{"status":"firing","labels":{"alertname":"X"},"startsAt":` + ts + extra + `}`)
	}
	kv := func(n, nameLen, valueLen int) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			name := fmt.Sprintf("l%d", i)
			if nameLen > len(name) {
				name += strings.Repeat("n", nameLen-len(name))
			}
			fmt.Fprintf(&b, "%q:%q", name, strings.Repeat("v", valueLen))
		}
		b.WriteByte('}')
		return b.String()
	}
	withKV := func(field, obj string) string {
		return body(`{"status":"firing","` + field + `":` + obj + `,"startsAt":` + ts + `}`)
	}
	tests := []struct {
		name string
		body string
		want []string // empty: accepted; else substrings of the error
	}{
		{"fingerprint at the limit", firing(`,"fingerprint":"` + strings.Repeat("f", MaxFingerprintBytes) + `"`), nil},
		{"fingerprint over the limit", firing(`,"fingerprint":"` + strings.Repeat("f", 40000) + `"`), []string{"alerts[0].fingerprint", "40000 bytes"}},
		{"startsAt year 10000 in UTC", body(`{"status":"firing","labels":{},"startsAt":"9999-12-31T23:59:59-23:59"}`), []string{"alerts[0].startsat", "year 10000"}},
		{"startsAt year 9999 in UTC", body(`{"status":"firing","labels":{},"startsAt":"9999-12-31T23:59:59+23:59"}`), nil},
		{"endsAt year 10000 in UTC", firing(`,"endsAt":"9999-12-31T23:00:00-01:30"`), []string{"alerts[0].endsat", "year 10000"}},
		{"startsAt year 0 in UTC", body(`{"status":"firing","labels":{},"startsAt":"0001-01-01T00:30:00+01:00"}`), []string{"alerts[0].startsat", "year 0"}},
		{"endsAt zero (firing)", firing(`,"endsAt":"0001-01-01T00:00:00Z"`), nil},
		{"labels at the count limit", withKV("labels", kv(MaxLabels, 0, 1)), nil},
		{"too many labels", withKV("labels", kv(MaxLabels+1, 0, 1)), []string{"alerts[0].labels", "257 entries"}},
		{"too many annotations", withKV("annotations", kv(MaxLabels+1, 0, 1)), []string{"alerts[0].annotations", "entries"}},
		{"label name over the limit", withKV("labels", kv(1, MaxLabelNameBytes+1, 1)), []string{"alerts[0].labels", "name of 1025 bytes"}},
		{"label value at the limit", withKV("labels", kv(1, 0, MaxLabelValueBytes)), nil},
		{"label value over the limit", withKV("labels", kv(1, 0, MaxLabelValueBytes+1)), []string{`alerts[0].labels["l0"]`, "value of 16385 bytes"}},
		{"annotation value at the limit", withKV("annotations", kv(1, 0, MaxAnnotationValueBytes)), nil},
		{"annotation value over the limit", withKV("annotations", kv(1, 0, MaxAnnotationValueBytes+1)), []string{`alerts[0].annotations["l0"]`}},
		{"annotation name over the limit", withKV("annotations", kv(1, MaxLabelNameBytes+1, 1)), []string{"alerts[0].annotations", "name of"}},
		{"labels and annotations over the alert's limit together", body(`{"status":"firing","labels":` + kv(10, 0, MaxLabelValueBytes) + `,"annotations":` + kv(2, 0, MaxAnnotationValueBytes) + `,"startsAt":` + ts + `}`), []string{"alerts[0]", "together"}},
		{"labels and annotations at the alert's limit", withKV("annotations", kv(4, 0, MaxAlertBytes/4-2)), nil}, // names l0..l3 of 2 bytes
		{"generatorURL over the limit", firing(`,"generatorURL":"http://x/` + strings.Repeat("g", MaxURLBytes) + `"`), []string{"alerts[0].generatorurl"}},
		{"groupKey over the limit", `{"version":"4","groupKey":"` + strings.Repeat("k", MaxGroupKeyBytes+1) + `","alerts":[]}`, []string{"groupkey"}},
		{"externalURL over the limit", `{"version":"4","externalURL":"http://` + strings.Repeat("e", MaxURLBytes) + `","alerts":[]}`, []string{"externalurl"}},
		{"receiver over the limit", `{"version":"4","receiver":"` + strings.Repeat("r", MaxReceiverBytes+1) + `","alerts":[]}`, []string{"receiver"}},
		{"a leap second names its field", firing(`,"endsAt":"2026-12-31T23:59:60Z"`), []string{"alerts[0].endsat", "unparseable timestamp"}},
		{"startsAt unparseable names its field", body(`{"status":"firing","labels":{},"startsAt":"soon"}`), []string{"alerts[0].startsat", "unparseable timestamp"}},
		{"second alert wrong", body(`{"status":"firing","labels":{},"startsAt":` + ts + `},{"status":"firing","labels":{},"startsAt":"9999-12-31T23:59:59-23:59"}`), []string{"alerts[1].startsat"}},
		{"alerts not an array", `{"version":"4","alerts":{"status":"firing"}}`, []string{"field alerts", "array"}},
		{"alerts null", `{"version":"4","alerts":null}`, nil},
		{"an alert a number", `{"version":"4","alerts":[1]}`, []string{"alerts[0]", "object"}},
		{"an alert's labels a list", body(`{"status":"firing","labels":["a"],"startsAt":` + ts + `}`), []string{"alerts[0].labels", "object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tc.body))
			_, perr := ParseNotification([]byte(tc.body))
			if (err == nil) != (perr == nil) || (err != nil && err.Error() != perr.Error()) {
				t.Fatalf("DecodeMessage and ParseNotification disagree: %v / %v", err, perr)
			}
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an *InputError", err)
			}
			msg := strings.ToLower(err.Error())
			for _, w := range tc.want {
				if !strings.Contains(msg, strings.ToLower(w)) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if len(err.Error()) > 400 {
				t.Errorf("error of %d bytes: Alertmanager logs it, keep it short", len(err.Error()))
			}
		})
	}
}

// A notification is read a part at a time, and the parts are the alerts
// DecodeMessage gives, in order, with the same derived fingerprints.
func TestAlertReaderParts(t *testing.T) {
	for _, f := range payloads.Files(t) {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := DecodeMessage(body)
		if err != nil {
			t.Fatal(err)
		}
		n, err := ParseNotification(body)
		if err != nil {
			t.Fatal(err)
		}
		if n.Count != len(whole.Alerts) || n.GroupKey != whole.GroupKey || n.Receiver != whole.Receiver || n.ExternalURL != whole.ExternalURL {
			t.Fatalf("%s: header %+v / count %d, want %d alerts", f, n.Message, n.Count, len(whole.Alerts))
		}
		for _, size := range []int{1, 2, 3} {
			r := n.Alerts()
			var got []template.Alert
			for {
				part, err := r.Next(size)
				if err != nil {
					t.Fatal(err)
				}
				if len(part) == 0 {
					break
				}
				if len(part) > size {
					t.Fatalf("part of %d alerts, asked for %d", len(part), size)
				}
				got = append(got, part...)
			}
			if !reflect.DeepEqual(got, []template.Alert(whole.Alerts)) {
				t.Fatalf("%s: parts of %d differ from the whole", f, size)
			}
		}
		if n.Count > 1 {
			r := n.Alerts()
			if err := r.Skip(1); err != nil {
				t.Fatal(err)
			}
			rest, err := r.Next(-1)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rest, []template.Alert(whole.Alerts[1:])) {
				t.Fatalf("%s: after Skip(1) got %d alerts, want the last %d", f, len(rest), n.Count-1)
			}
		}
	}
}

func TestCountAlerts(t *testing.T) {
	for _, f := range payloads.Files(t) {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n, err := ParseNotification(body)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.CountAlerts(); got != n.Count {
			t.Errorf("%s: CountAlerts = %d, want %d", f, got, n.Count)
		}
	}
	n, err := ParseNotification([]byte(`{"version":"4","alerts":null}`))
	if err != nil || n.CountAlerts() != 0 {
		t.Errorf("null alerts: %v %d", err, n.CountAlerts())
	}
}
