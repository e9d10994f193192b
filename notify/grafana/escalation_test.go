package grafana

import (
	"testing"

	"github.com/amtriage/amtriage/incident"
)

// An escalation changes nothing Grafana shows: no request, even for an
// incident already annotated.
func TestEscalationIgnored(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	inc := newIncident(1)
	mustNotify(t, n, opened(inc))
	before := len(fake.Requests())
	mustNotify(t, n, &incident.Event{Kind: incident.Escalated, At: started, Incident: inc})
	if r := fake.Requests()[before:]; len(r) != 0 {
		t.Errorf("requests for an escalation = %+v", r)
	}
}
