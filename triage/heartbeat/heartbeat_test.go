package heartbeat

import (
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
)

var t0 = time.Date(2026, 11, 23, 3, 4, 5, 0, time.UTC)

func TestQuiet(t *testing.T) {
	for _, tt := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"alertname": "Watchdog", "severity": "none"}, true},
		{map[string]string{"alertname": "InfoInhibitor", "severity": "none"}, true},
		{map[string]string{"alertname": "Watchdog"}, true}, // the heartbeat, however labelled
		{map[string]string{"alertname": "DiskFull", "severity": "warning"}, false},
		{map[string]string{"alertname": "DiskFull"}, false},
	} {
		if got := Quiet(tt.labels, "Watchdog"); got != tt.want {
			t.Errorf("Quiet(%v) = %v, want %v", tt.labels, got, tt.want)
		}
	}
}

func TestSwitch(t *testing.T) {
	const am1, am2 = "http://am1:9093", "http://am2:9093"
	s := New(15*time.Minute, map[string]time.Time{am1: t0}, t0)
	if since, ok := s.Beat(am2, t0.Add(time.Minute)); !ok || !since.IsZero() {
		t.Errorf("the first heartbeat of an Alertmanager: %v %v, want recorded, ending no silence", since, ok)
	}
	if _, ok := s.Beat("", t0); ok || len(s.Last()) != 2 {
		t.Errorf("a heartbeat without externalURL was recorded: %v", s.Last())
	}
	if due := s.Due(t0.Add(15 * time.Minute)); len(due) != 0 {
		t.Errorf("due at exactly missing_after: %+v", due)
	}
	due := s.Due(t0.Add(15*time.Minute + time.Second))
	if len(due) != 1 || due[0].ExternalURL != am1 || len(due[0].Observations) != 1 {
		t.Fatalf("due: %+v, want am1's silence", due)
	}
	o := due[0].Observations[0]
	if o.Service != Service || o.Decision.Severity != 1 || o.Alert.Status != incident.Firing ||
		!o.Alert.StartsAt.Equal(t0) || o.Alert.Key != Key(am1, t0) || o.Alert.Annotations["summary"] != "no heartbeat from "+am1 {
		t.Errorf("silence observation %+v", o)
	}
	// A replayed, older heartbeat changes nothing; the next one ends the silence.
	if _, ok := s.Beat(am1, t0.Add(-time.Minute)); ok || !s.Last()[am1].Equal(t0) {
		t.Errorf("an older heartbeat moved the clock: %v", s.Last())
	}
	back := t0.Add(20 * time.Minute)
	since, ok := s.Beat(am1, back)
	if !ok || !since.Equal(t0) {
		t.Fatalf("Beat = %v %v, want the silence since %v", since, ok, t0)
	}
	r := s.Resolved(am1, since, back)
	if ro := r.Observations[0]; ro.Alert.Key != o.Alert.Key || ro.Alert.Status != incident.Resolved || !ro.Alert.EndsAt.Equal(back) || ro.Unit != o.Unit {
		t.Errorf("resolution %+v does not resolve %+v", ro, o)
	}
	if due := s.Due(back.Add(time.Minute)); len(due) != 1 || due[0].ExternalURL != am2 {
		t.Errorf("due after am1's heartbeat came back: %+v, want am2's silence alone", due)
	}
}

// After a start, a silence waits StartGrace for a heartbeat: Alertmanager
// could not deliver while amtriage was down. It is still judged from its
// beginning, not from the start.
func TestStartGrace(t *testing.T) {
	const am = "http://am1:9093"
	for _, tt := range []struct {
		name         string
		started, now time.Duration // after the last heartbeat
		due          bool
	}{
		{"down for an hour, just started", time.Hour, time.Hour + time.Minute, false},
		{"down for an hour, up past the grace", time.Hour, time.Hour + StartGrace, true},
		{"restarted in the silence: not reset", 10 * time.Minute, 15*time.Minute + time.Second, true},
		{"restarted just before missing_after", 14 * time.Minute, 15*time.Minute + time.Second, false},
		{"restarted just before missing_after, grace over", 14 * time.Minute, 14*time.Minute + StartGrace, true},
	} {
		s := New(15*time.Minute, map[string]time.Time{am: t0}, t0.Add(tt.started))
		if got := len(s.Due(t0.Add(tt.now))) == 1; got != tt.due {
			t.Errorf("%s: due %v, want %v", tt.name, got, tt.due)
		}
	}
	if due := New(10*time.Second, map[string]time.Time{am: t0}, t0.Add(time.Hour)).Due(t0.Add(time.Hour + 10*time.Second)); len(due) != 1 {
		t.Errorf("the grace exceeds a missing_after of 10s: %+v", due)
	}
}

func TestOwns(t *testing.T) {
	o := New(time.Minute, map[string]time.Time{"http://am": t0}, t0).Due(t0.Add(time.Hour))[0].Observations[0]
	if !Owns(&incident.Incident{Service: o.Service, Unit: o.Unit}) {
		t.Error("the switch does not own its incident")
	}
	if Owns(&incident.Incident{Service: Service}) {
		t.Error("a service named alerting-pipeline is taken for the switch's")
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://am0:9093":           "http://am0:9093",
		"http://am0:9093/":          "http://am0:9093",
		"HTTP://AM0:9093":           "http://am0:9093",
		" http://am0:9093/am/ ":     "http://am0:9093/am",
		"http://am0:9093/Path/Case": "http://am0:9093/Path/Case",
		"":                          "",
		"not a url/":                "not a url",
		"http://x\n\nINJECT":        "http://x  INJECT",
	} {
		if got := NormalizeURL(in); got != want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// An Alertmanager silent for longer than the retention is forgotten: its
// silence is returned (to resolve its incident) and no longer judged.
func TestForget(t *testing.T) {
	const am1, am2 = "http://am1:9093", "http://am2:9093"
	s := New(15*time.Minute, map[string]time.Time{am1: t0, am2: t0.Add(6 * 24 * time.Hour)}, t0)
	now := t0.Add(7*24*time.Hour + time.Second)
	got := s.Forget(now, 7*24*time.Hour)
	if len(got) != 1 || !got[am1].Equal(t0) {
		t.Fatalf("forgotten %v, want am1 since %v", got, t0)
	}
	if last := s.Last(); len(last) != 1 || last[am2].IsZero() {
		t.Errorf("still watched: %v, want am2 only", last)
	}
	if s.Forget(now, 0) != nil {
		t.Error("retention 0 forgot something")
	}
}

// A step of the wall clock (NTP, a VM resumed) is not a silence: the
// switch waits StartGrace for heartbeats in the new time, as after a
// restart.
func TestClockStepIsNotASilence(t *testing.T) {
	const am = "http://am:9093"
	s := New(15*time.Minute, map[string]time.Time{am: t0}, t0.Add(-time.Hour))
	var mono time.Duration
	s.elapsed = func() time.Duration { return mono }
	if due := s.Due(t0); len(due) != 0 {
		t.Fatalf("due right after a heartbeat: %+v", due)
	}
	// The wall clock jumps 3 hours while 30 s pass on the monotonic clock.
	mono += 30 * time.Second
	stepped := t0.Add(3*time.Hour + 30*time.Second)
	if due := s.Due(stepped); len(due) != 0 {
		t.Errorf("a clock step opened %d silences", len(due))
	}
	// Time that really passes is judged as before.
	mono += StartGrace + 16*time.Minute
	if due := s.Due(stepped.Add(StartGrace + 16*time.Minute)); len(due) != 1 {
		t.Errorf("a real silence after the step: %d due, want 1", len(due))
	}
	// A heartbeat long before the last (the clock went back) is recorded.
	s.Beat(am, stepped)
	if _, ok := s.Beat(am, stepped.Add(-2*time.Hour)); !ok {
		t.Error("a heartbeat after the clock went back was dropped")
	}
}
