package incident

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSlug(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"checkout", "checkout"},
		{"Payments API", "payments-api"},
		{"team/billing.v2", "team-billing-v2"},
		{"--edge--", "edge"},
		{"Ünïcode", "n-code"},
		{"", "incident"},
		{"///", "incident"},
		{strings.Repeat("a", 60), strings.Repeat("a", 48)},
		{strings.Repeat("ab-", 30), strings.TrimSuffix(strings.Repeat("ab-", 16), "-")},
	}
	for _, tt := range tests {
		if got := slug(tt.in); got != tt.want {
			t.Errorf("slug(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewID(t *testing.T) {
	key := occKey("abc", t0)
	idRE := regexp.MustCompile(`^[a-z0-9-]{1,48}-[0-9a-f]{12}$`)
	tests := []struct {
		name       string
		service    string
		key        string
		wantPrefix string
	}{
		{"plain", "checkout", key, "checkout-"},
		{"spaces", "Payments API", key, "payments-api-"},
		{"empty service", "", key, "incident-"},
		{"long service", strings.Repeat("x", 300), key, strings.Repeat("x", 48) + "-"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newID(tt.service, tt.key)
			if id != newID(tt.service, tt.key) {
				t.Fatalf("newID not deterministic")
			}
			if !strings.HasPrefix(id, tt.wantPrefix) || !idRE.MatchString(id) || len(id) > 255 {
				t.Errorf("newID(%q) = %q, want prefix %q and shape %s", tt.service, id, tt.wantPrefix, idRE)
			}
			if prev, dup := seen[id]; dup {
				t.Errorf("id %q also produced by %s", id, prev)
			}
			seen[id] = tt.name
		})
	}
	// The id is a PagerDuty dedup key: it must not change between versions.
	if got := newID("checkout", "abc@2025-03-14T09:26:53Z"); got != "checkout-01ada110c7ea" {
		t.Errorf("newID changed: %q (dedup keys of open incidents would break)", got)
	}
	if newID("checkout", key) == newID("checkout", occKey("abc", t0.Add(time.Second))) {
		t.Error("a different occurrence must give a different id")
	}
	if newID("checkout", key) == newID("checkouts", key) {
		t.Error("a different service must give a different id")
	}
}

func TestTitle(t *testing.T) {
	started := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name    string
		service string
		alert   Alert
		started time.Time
		want    string
	}{
		{"summary", "checkout", Alert{Name: "HighErrorRate", Annotations: map[string]string{"summary": "5xx above 50%"}}, started,
			"INCIDENT: checkout - 5xx above 50% since 09:26 UTC"},
		{"summary trimmed", "checkout", Alert{Name: "HighErrorRate", Annotations: map[string]string{"summary": "  slow  \n"}}, started,
			"INCIDENT: checkout - slow since 09:26 UTC"},
		{"no summary uses alertname", "checkout", Alert{Name: "HighErrorRate", Annotations: map[string]string{"description": "d"}}, started,
			"INCIDENT: checkout - HighErrorRate since 09:26 UTC"},
		{"blank summary uses alertname", "checkout", Alert{Name: "HighErrorRate", Annotations: map[string]string{"summary": "   "}}, started,
			"INCIDENT: checkout - HighErrorRate since 09:26 UTC"},
		{"nothing", "checkout", Alert{}, started,
			"INCIDENT: checkout - alert firing since 09:26 UTC"},
		{"time shown in UTC", "api", Alert{Name: "Down"}, time.Date(2025, 3, 14, 0, 30, 0, 0, cet),
			"INCIDENT: api - Down since 23:30 UTC"},
		{"200 runes kept", "api", Alert{Annotations: map[string]string{"summary": strings.Repeat("é", 200)}}, started,
			"INCIDENT: api - " + strings.Repeat("é", 200) + " since 09:26 UTC"},
		{"201 runes cut", "api", Alert{Annotations: map[string]string{"summary": strings.Repeat("é", 201)}}, started,
			"INCIDENT: api - " + strings.Repeat("é", 199) + "… since 09:26 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := title(tt.service, &tt.alert, tt.started); got != tt.want {
				t.Errorf("title = %q\nwant    %q", got, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		inc  Incident
		now  time.Time
		want time.Duration
	}{
		{"open runs until now", Incident{Status: Firing, StartedAt: t0}, at(90 * time.Minute), 90 * time.Minute},
		{"resolved is fixed", Incident{Status: Resolved, StartedAt: t0, ResolvedAt: at(17 * time.Minute)}, at(5 * time.Hour), 17 * time.Minute},
	}
	for _, tt := range tests {
		if got := tt.inc.Duration(tt.now); got != tt.want {
			t.Errorf("%s: Duration = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestChangesEmpty(t *testing.T) {
	a := &Alert{Key: "k"}
	tests := []struct {
		name string
		ch   Changes
		want bool
	}{
		{"zero", Changes{}, true},
		{"empty tombstone map", Changes{Tombstones: map[string]Tombstone{}}, true},
		{"decisions alone are not a change", Changes{Decisions: 3}, true},
		{"incident", Changes{Incidents: []*Incident{{ID: "x"}}}, false},
		{"alert", Changes{Alerts: []AlertRef{{IncidentID: "x", Alert: a}}}, false},
		{"deleted alert", Changes{DeletedAlerts: []AlertRef{{IncidentID: "x", Alert: a}}}, false},
		{"tombstone", Changes{Tombstones: map[string]Tombstone{"k": {}}}, false},
		{"event", Changes{Events: []Event{{Kind: Opened}}}, false},
	}
	for _, tt := range tests {
		if got := tt.ch.Empty(); got != tt.want {
			t.Errorf("%s: Empty() = %v, want %v", tt.name, got, tt.want)
		}
	}
}
