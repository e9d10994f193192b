package pagerduty

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

func ack(dedup string) map[string]any {
	return map[string]any{"routing_key": key, "event_action": "acknowledge", "dedup_key": dedup}
}

func resolve(dedup string) map[string]any {
	return map[string]any{"routing_key": key, "event_action": "resolve", "dedup_key": dedup}
}

// payload is the v3 body, decoded loosely.
type payload struct {
	Event struct {
		ID           string `json:"id"`
		EventType    string `json:"event_type"`
		ResourceType string `json:"resource_type"`
		OccurredAt   string `json:"occurred_at"`
		Agent        *struct {
			ID, Type, Summary string
		} `json:"agent"`
		Data struct {
			ID          string `json:"id"`
			Type        string `json:"type"`
			HTMLURL     string `json:"html_url"`
			Status      string `json:"status"`
			IncidentKey string `json:"incident_key"`
			Title       string `json:"title"`
			Assignees   []struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			} `json:"assignees"`
		} `json:"data"`
	} `json:"event"`
}

func decode(t *testing.T, w Webhook) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(w.Body, &p); err != nil {
		t.Fatalf("webhook body: %v\n%s", err, w.Body)
	}
	return p
}

func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestRespondFollowsTheIncident(t *testing.T) {
	s := New()
	defer s.Close()
	s.SetWebhookSecrets("sekret")
	post(t, s, trigger("inc-1"))
	in, ok := s.Incident("inc-1")
	if !ok || in.IncidentKey != "inc-1" || in.Status != Triggered || in.Title != "down" || in.ID == "" {
		t.Fatalf("Incident = %+v, %v", in, ok)
	}
	alice := User{ID: "PALICE", Name: "Alice"}
	bob := User{ID: "PBOB", Name: "Bob"}
	steps := []struct {
		eventType  string
		act        Act
		status     string // incident status after
		agent      string // agent id in the event
		assignees  []string
		wantErrSub string
	}{
		{"incident.acknowledged", Act{By: &alice}, Acknowledged, "PALICE", []string{OnCall.ID}, ""},
		{"incident.unacknowledged", Act{}, Triggered, "PSVC0123", []string{OnCall.ID}, ""},
		{"incident.unacknowledged", Act{}, "", "", nil, "not acknowledged"},
		{"incident.reassigned", Act{By: &alice, To: []User{bob, alice}}, Triggered, "PALICE", []string{"PBOB", "PALICE"}, ""},
		{"incident.reassigned", Act{By: &alice}, "", "", nil, "Act.To"},
		{"incident.escalated", Act{To: []User{alice}}, Triggered, "PSVC0123", []string{"PALICE"}, ""},
		{"incident.acknowledged", Act{}, Acknowledged, "PALICE", []string{"PALICE"}, ""}, // the assignee acks
		{"incident.resolved", Act{By: &bob}, Resolved, "PBOB", []string{"PALICE"}, ""},
		{"incident.acknowledged", Act{By: &alice}, "", "", nil, "resolved"},
		{"incident.resolved", Act{}, "", "", nil, "already resolved"},
		{"incident.annotated", Act{}, "", "", nil, "not an incident"},
	}
	ids := map[string]bool{}
	for i, st := range steps {
		w, err := s.Respond(st.eventType, "inc-1", st.act)
		if st.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), st.wantErrSub) {
				t.Fatalf("step %d %s: err %v, want %q", i, st.eventType, err, st.wantErrSub)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, st.eventType, err)
		}
		p := decode(t, w)
		e := p.Event
		if e.EventType != st.eventType || e.ResourceType != "incident" || e.ID != w.EventID || e.ID == "" || e.OccurredAt == "" {
			t.Fatalf("step %d: event %+v", i, e)
		}
		if ids[e.ID] {
			t.Fatalf("step %d: event id %s reused", i, e.ID)
		}
		ids[e.ID] = true
		if e.Data.Type != "incident" || e.Data.ID != in.ID || e.Data.IncidentKey != "inc-1" || e.Data.Status != st.status || e.Data.HTMLURL != in.HTMLURL {
			t.Fatalf("step %d: data %+v", i, e.Data)
		}
		if e.Agent == nil || e.Agent.ID != st.agent {
			t.Fatalf("step %d: agent %+v, want %s", i, e.Agent, st.agent)
		}
		var got []string
		for _, a := range e.Data.Assignees {
			got = append(got, a.ID)
		}
		if strings.Join(got, ",") != strings.Join(st.assignees, ",") {
			t.Fatalf("step %d: assignees %v, want %v", i, got, st.assignees)
		}
		if cur, _ := s.Incident("inc-1"); cur.Status != st.status {
			t.Fatalf("step %d: fake's incident is %s, want %s", i, cur.Status, st.status)
		}
	}
	// Resolved in PagerDuty, so the Events API acknowledge is dropped, and a
	// new trigger opens a new incident with the same key.
	post(t, s, ack("inc-1"))
	if evs := s.Events(); !evs[len(evs)-1].Dropped {
		t.Fatal("acknowledge after a resolve in PagerDuty was applied")
	}
	post(t, s, trigger("inc-1"))
	if again, _ := s.Incident("inc-1"); again.ID == in.ID || again.Status != Triggered || again.Number != in.Number+1 {
		t.Fatalf("re-trigger: incident %+v after %+v", again, in)
	}
	if _, err := s.Respond("incident.acknowledged", "nope", Act{}); err == nil {
		t.Fatal("Respond for an unknown dedup key succeeded")
	}
}

func TestWebhookHeadersAndSignatures(t *testing.T) {
	s := New()
	defer s.Close()
	s.SetWebhookSecrets("old", "new") // rotation: signed with both
	s.SetWebhookSubscription("PSUB123")
	post(t, s, trigger("k"))
	w, err := s.Respond("incident.acknowledged", "k", Act{})
	if err != nil {
		t.Fatal(err)
	}
	h := w.Header
	if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "PagerDuty-Webhook/V3.0" ||
		h.Get("X-Webhook-Subscription") != "PSUB123" || len(h.Get("X-Webhook-Id")) != 36 {
		t.Fatalf("headers %v", h)
	}
	want := "v1=" + hmacHex("old", w.Body) + ",v1=" + hmacHex("new", w.Body)
	if got := h.Get("X-PagerDuty-Signature"); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	w2, _ := s.Respond("incident.resolved", "k", Act{})
	if w2.Header.Get("X-Webhook-Id") == h.Get("X-Webhook-Id") {
		t.Fatal("two webhooks share an X-Webhook-Id")
	}

	cases := []struct {
		name string
		w    Webhook
		sig  string // "" = header absent
	}{
		{"tampered body keeps the old signature", w.TamperBody(), want},
		{"replaced signature", w.WithSignature("v1=00"), "v1=00"},
		{"no signature", w.WithoutSignature(), ""},
		{"forger's secret", w.SignedWith("guess"), "v1=" + hmacHex("guess", w.Body)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.Header.Get("X-PagerDuty-Signature"); got != tc.sig {
				t.Fatalf("signature %q, want %q", got, tc.sig)
			}
			if tc.name == "tampered body keeps the old signature" {
				if string(tc.w.Body) == string(w.Body) || decode(t, tc.w).Event.Agent.Summary != "Mallory" {
					t.Fatalf("body not tampered: %s", tc.w.Body)
				}
			}
		})
	}
	if h.Get("X-PagerDuty-Signature") != want {
		t.Fatal("a variant changed the original webhook's headers")
	}
}

func TestEventWebhooks(t *testing.T) {
	s := New()
	defer s.Close()
	post(t, s, trigger("before"))
	s.SetWebhookSecrets("sekret")
	post(t, s, trigger("k"))
	post(t, s, trigger("k")) // de-duplicated: no new incident, no webhook
	post(t, s, ack("k"))
	post(t, s, ack("k")) // already acknowledged: nothing changes
	post(t, s, resolve("k"))
	post(t, s, resolve("k")) // dropped
	var got []string
	for _, w := range s.EventWebhooks() {
		p := decode(t, w)
		if p.Event.Data.IncidentKey != "k" || p.Event.Agent == nil || p.Event.Agent.Type != "service_reference" {
			t.Fatalf("echo %s", w.Body)
		}
		if w.Header.Get("X-PagerDuty-Signature") != "v1="+hmacHex("sekret", w.Body) {
			t.Fatalf("echo not signed: %v", w.Header)
		}
		got = append(got, p.Event.EventType+":"+p.Event.Data.Status)
	}
	want := "incident.triggered:triggered,incident.acknowledged:acknowledged,incident.resolved:resolved"
	if strings.Join(got, ",") != want {
		t.Fatalf("echoes %v, want %s", got, want)
	}
}
