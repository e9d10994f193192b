package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// BenchmarkLoadState measures loading a state of 10,000 open alerts in
// 100 incidents, as a restarted process (or a standby taking over) does.
func BenchmarkLoadState(b *testing.B, backend Backend) {
	const incidents, perIncident = 100, 100
	s, _ := backend(b)
	for i := range incidents {
		ch := &incident.Changes{}
		id := fmt.Sprintf("api-%03d", i)
		var inc *incident.Incident
		for j := range perIncident {
			a := newAlert(fmt.Sprintf("%016x", i*perIncident+j), t0.Add(time.Duration(j)*time.Second), "Q2: 62% of requests failing (> 50%) [prometheus]")
			if inc == nil {
				inc = newIncident(id, a, a.Decision.Reasons...)
			}
			inc.Alerts[a.Key] = a
			ch.Alerts = append(ch.Alerts, incident.AlertRef{IncidentID: id, Alert: a})
		}
		inc.Firing = perIncident
		ch.Incidents = []*incident.Incident{inc}
		apply(b, s, &store.Commit{LastSeq: uint64(i + 1), Changes: []*incident.Changes{ch}})
	}
	b.ResetTimer()
	for b.Loop() {
		ls := load(b, s)
		if len(ls.Alerts) != incidents*perIncident || len(ls.Incidents) != incidents {
			b.Fatalf("loaded %d alerts in %d incidents", len(ls.Alerts), len(ls.Incidents))
		}
	}
}
