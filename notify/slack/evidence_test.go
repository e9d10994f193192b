package slack

import (
	"strings"
	"testing"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// A Sev 1–2 incident's message links its evidence when external_url is
// set; a Sev 3 one, or without external_url, does not.
func TestMessageLinksEvidence(t *testing.T) {
	const want = "<https://amtriage.example.com/api/incidents/api-0123456789ab/evidence|Evidence>"
	url := func(id string) string { return "https://amtriage.example.com/api/incidents/" + id + "/evidence" }
	tests := []struct {
		name     string
		sev      severity.Level
		link     func(string) string
		channel  string
		wantLink bool
	}{
		{"Sev 2 with external_url", 2, url, "#incidents", true},
		{"Sev 3 with external_url", 3, url, "#alerts", false},
		{"Sev 2 without external_url", 2, nil, "#incidents", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.EvidenceURL = tt.link })
			e.notify(t, event(incident.Opened, tt.sev, 0, alert("HighErrorRate", 1)))
			e.notify(t, event(incident.StatusUpdate, tt.sev, 0, alert("HighErrorRate", 1)))
			msgs := e.fake.Messages(tt.channel)
			if len(msgs) == 0 {
				t.Fatalf("no message in %s", tt.channel)
			}
			text := blockText(decodeBlocks(t, msgs[0].Blocks))
			if got := strings.Contains(text, want); got != tt.wantLink {
				t.Fatalf("evidence link shown %v, want %v:\n%s", got, tt.wantLink, text)
			}
			if tt.wantLink && msgs[0].Edits == 0 {
				t.Fatalf("the message was not updated")
			}
		})
	}
}
