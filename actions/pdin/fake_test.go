package pdin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/amtriage/amtriage/actions/pdin"
	"github.com/amtriage/amtriage/internal/fakes/pagerduty"
)

// receiver is a minimal /pagerduty/webhook: verify, decode, record.
type receiver struct {
	mu      sync.Mutex
	events  []pdin.Event
	refused []string // reasons
	srv     *httptest.Server
}

func newReceiver(t *testing.T, secrets ...string) *receiver {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := pdin.ReadRequest(r, keys, 0)
		if err != nil {
			rc.mu.Lock()
			rc.refused = append(rc.refused, string(pdin.ReasonOf(err)))
			rc.mu.Unlock()
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		ev, err := pdin.DecodeEvent(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.events = append(rc.events, ev)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []pdin.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]pdin.Event(nil), rc.events...)
}

func (rc *receiver) reasons() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.refused...)
}

const routingKey = "0123456789abcdef0123456789abcdef"

func trigger(t *testing.T, pd *pagerduty.Server, dedup string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{
		"routing_key": routingKey, "event_action": "trigger", "dedup_key": dedup,
		"payload": map[string]any{"summary": "checkout: HighErrorRate", "source": "amtriage", "severity": "critical"},
	})
	resp, err := http.Post(pd.URL+"/v2/enqueue", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger: %d", resp.StatusCode)
	}
}

func send(t *testing.T, url string, w pagerduty.Webhook) int {
	t.Helper()
	status, err := pagerduty.SendWebhook(context.Background(), url, w)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

func TestFakeWebhooksVerifyAndDecode(t *testing.T) {
	pd := pagerduty.New()
	defer pd.Close()
	pd.SetWebhookSecrets("current")
	rc := newReceiver(t, "current")
	trigger(t, pd, "checkout-3f9a1c2b4d5e")
	inc, _ := pd.Incident("checkout-3f9a1c2b4d5e")

	alice := pagerduty.User{ID: "PALICE", Name: "Alice"}
	bob := pagerduty.User{ID: "PBOB", Name: "Bob"}
	acts := []struct {
		eventType string
		act       pagerduty.Act
		assignees []string
	}{
		{pdin.Acknowledged, pagerduty.Act{By: &alice}, []string{pagerduty.OnCall.ID}},
		{pdin.Unacknowledged, pagerduty.Act{}, []string{pagerduty.OnCall.ID}},
		{pdin.Reassigned, pagerduty.Act{By: &alice, To: []pagerduty.User{bob}}, []string{"PBOB"}},
		{pdin.Escalated, pagerduty.Act{To: []pagerduty.User{alice}}, []string{"PALICE"}},
		{pdin.Resolved, pagerduty.Act{By: &alice}, []string{"PALICE"}},
	}
	for _, a := range acts {
		w, err := pd.Respond(a.eventType, "checkout-3f9a1c2b4d5e", a.act)
		if err != nil {
			t.Fatal(err)
		}
		if st := send(t, rc.srv.URL, w); st != http.StatusAccepted {
			t.Fatalf("%s answered %d", a.eventType, st)
		}
		evs := rc.got()
		ev := evs[len(evs)-1]
		if ev.Type != a.eventType || ev.ID != w.EventID || ev.Ignorable || ev.DedupKey() != "checkout-3f9a1c2b4d5e" ||
			ev.Incident.ID != inc.ID || ev.Incident.HTMLURL != inc.HTMLURL || ev.OccurredAt.IsZero() || ev.Agent == nil {
			t.Fatalf("%s decoded as %+v", a.eventType, ev)
		}
		if a.act.By != nil && (ev.Agent.ID != a.act.By.ID || ev.Agent.Summary != a.act.By.Name || ev.Agent.HTMLURL == "") {
			t.Fatalf("%s agent %+v", a.eventType, ev.Agent)
		}
		var got []string
		for _, r := range ev.Incident.Assignees {
			got = append(got, r.ID)
		}
		if len(got) != len(a.assignees) || got[0] != a.assignees[0] {
			t.Fatalf("%s assignees %v, want %v", a.eventType, got, a.assignees)
		}
	}
	// A retry repeats the delivery: same event id, for the caller to drop.
	w, _ := pd.Respond("incident.priority_updated", "checkout-3f9a1c2b4d5e", pagerduty.Act{})
	send(t, rc.srv.URL, w)
	send(t, rc.srv.URL, w)
	evs := rc.got()
	if a, b := evs[len(evs)-2], evs[len(evs)-1]; a.ID != b.ID || !a.Ignorable {
		t.Fatalf("redelivery: %+v then %+v", a, b)
	}
}

func TestFakeTamperedWebhooksRefused(t *testing.T) {
	pd := pagerduty.New()
	defer pd.Close()
	pd.SetWebhookSecrets("old", "new") // PagerDuty mid-rotation signs with both
	trigger(t, pd, "k")
	w, err := pd.Respond(pdin.Acknowledged, "k", pagerduty.Act{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		secrets []string // the receiver's
		w       pagerduty.Webhook
		want    string // refusal reason; "" = accepted
	}{
		{"rotation: receiver still on the old secret", []string{"old"}, w, ""},
		{"rotation: receiver already on the new secret", []string{"new"}, w, ""},
		{"receiver with both", []string{"new", "old"}, w, ""},
		{"receiver with another secret", []string{"other"}, w, string(pdin.ReasonMismatch)},
		{"tampered body", []string{"old"}, w.TamperBody(), string(pdin.ReasonMismatch)},
		{"forged signature", []string{"old"}, w.SignedWith("guess"), string(pdin.ReasonMismatch)},
		{"no signature", []string{"old"}, w.WithoutSignature(), string(pdin.ReasonMissing)},
		{"garbage signature", []string{"old"}, w.WithSignature("sha256=abc"), string(pdin.ReasonMalformed)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.secrets...)
			st := send(t, rc.srv.URL, tc.w)
			if tc.want == "" {
				if st != http.StatusAccepted || len(rc.got()) != 1 {
					t.Fatalf("status %d, events %d, refused %v", st, len(rc.got()), rc.reasons())
				}
				return
			}
			if st != http.StatusUnauthorized || len(rc.got()) != 0 || len(rc.reasons()) != 1 || rc.reasons()[0] != tc.want {
				t.Fatalf("status %d, events %d, refused %v; want %s", st, len(rc.got()), rc.reasons(), tc.want)
			}
		})
	}
}

func TestFakeEventWebhooksCarryTheDedupKey(t *testing.T) {
	pd := pagerduty.New()
	defer pd.Close()
	pd.SetWebhookSecrets("s")
	rc := newReceiver(t, "s")
	trigger(t, pd, "checkout-3f9a1c2b4d5e")
	for _, w := range pd.EventWebhooks() {
		send(t, rc.srv.URL, w)
	}
	if len(rc.got()) != 1 || rc.got()[0].Type != "incident.triggered" || !rc.got()[0].Ignorable {
		t.Fatalf("events %+v", rc.got())
	}
}
