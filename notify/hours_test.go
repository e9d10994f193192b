package notify

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

func TestBusinessHours(t *testing.T) {
	bh, err := ParseBusinessHours("Europe/Berlin", "09:00", "18:00", nil)
	if err != nil {
		t.Fatal(err)
	}
	berlin := bh.Location
	tests := []struct {
		at       time.Time
		open     bool
		nextOpen time.Time
	}{
		{time.Date(2026, 11, 23, 10, 0, 0, 0, berlin), true, time.Date(2026, 11, 23, 10, 0, 0, 0, berlin)},  // Monday
		{time.Date(2026, 11, 23, 8, 59, 0, 0, berlin), false, time.Date(2026, 11, 23, 9, 0, 0, 0, berlin)},  // before opening
		{time.Date(2026, 11, 23, 18, 0, 0, 0, berlin), false, time.Date(2026, 11, 24, 9, 0, 0, 0, berlin)},  // closing time
		{time.Date(2026, 11, 27, 19, 30, 0, 0, berlin), false, time.Date(2026, 11, 30, 9, 0, 0, 0, berlin)}, // Friday night → Monday
		{time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC), false, time.Date(2026, 11, 30, 9, 0, 0, 0, berlin)}, // Sunday, in UTC
		// Days that change to and from daylight saving time: the wall clock
		// decides, not the time elapsed since midnight (23 or 25 hours long).
		{time.Date(2027, 3, 29, 9, 30, 0, 0, berlin), true, time.Date(2027, 3, 29, 9, 30, 0, 0, berlin)},   // an ordinary Monday
		{time.Date(2026, 3, 30, 8, 30, 0, 0, berlin), false, time.Date(2026, 3, 30, 9, 0, 0, 0, berlin)},   // control
		{time.Date(2026, 10, 26, 8, 30, 0, 0, berlin), false, time.Date(2026, 10, 26, 9, 0, 0, 0, berlin)}, // control
	}
	// A schedule open every day, so the change days themselves (Sundays in
	// the EU) are business days.
	daily, err := ParseBusinessHours("Europe/Berlin", "09:00", "18:00", []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
	if err != nil {
		t.Fatal(err)
	}
	dst := []struct {
		name     string
		at       time.Time
		open     bool
		nextOpen time.Time
	}{
		{"spring forward, 09:30 is open", time.Date(2026, 3, 29, 9, 30, 0, 0, berlin), true, time.Date(2026, 3, 29, 9, 30, 0, 0, berlin)},
		{"spring forward, 18:30 is closed", time.Date(2026, 3, 29, 18, 30, 0, 0, berlin), false, time.Date(2026, 3, 30, 9, 0, 0, 0, berlin)},
		{"spring forward, opens at 09:00 not 10:00", time.Date(2026, 3, 29, 7, 0, 0, 0, berlin), false, time.Date(2026, 3, 29, 9, 0, 0, 0, berlin)},
		{"fall back, 08:30 is closed", time.Date(2026, 10, 25, 8, 30, 0, 0, berlin), false, time.Date(2026, 10, 25, 9, 0, 0, 0, berlin)},
		{"fall back, 17:30 is open", time.Date(2026, 10, 25, 17, 30, 0, 0, berlin), true, time.Date(2026, 10, 25, 17, 30, 0, 0, berlin)},
		{"fall back, opens at 09:00 not 08:00", time.Date(2026, 10, 25, 1, 0, 0, 0, berlin), false, time.Date(2026, 10, 25, 9, 0, 0, 0, berlin)},
	}
	for _, tt := range dst {
		if got := daily.Open(tt.at); got != tt.open {
			t.Errorf("%s: Open(%v) = %v, want %v", tt.name, tt.at, got, tt.open)
		}
		if got := daily.Next(tt.at); !got.Equal(tt.nextOpen) {
			t.Errorf("%s: Next(%v) = %v, want %v", tt.name, tt.at, got, tt.nextOpen)
		}
	}
	for _, tt := range tests {
		if got := bh.Open(tt.at); got != tt.open {
			t.Errorf("Open(%v) = %v, want %v", tt.at, got, tt.open)
		}
		if got := bh.Next(tt.at); !got.Equal(tt.nextOpen) {
			t.Errorf("Next(%v) = %v, want %v", tt.at, got, tt.nextOpen)
		}
	}
	for _, bad := range [][3]string{{"Mars/Olympus", "09:00", "18:00"}, {"UTC", "9am", "18:00"}, {"UTC", "18:00", "09:00"}} {
		if _, err := ParseBusinessHours(bad[0], bad[1], bad[2], nil); err == nil {
			t.Errorf("ParseBusinessHours(%v) accepted", bad)
		}
	}
}

func TestHeldOutsideHours(t *testing.T) {
	bh, _ := ParseBusinessHours("UTC", "09:00", "18:00", nil)
	night := time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)
	delivered := 0
	h := &HeldOutsideHours{
		Notifier:   notifierFunc(func(context.Context, *incident.Event) (bool, error) { delivered++; return false, nil }),
		Hours:      bh,
		Severities: map[severity.Level]bool{4: true},
		Now:        func() time.Time { return night },
	}
	sev4 := &incident.Event{Kind: incident.Opened, Incident: incident.Incident{Severity: 4, PeakSeverity: 4}}
	_, err := h.Notify(context.Background(), sev4)
	var hold *HoldError
	if !errors.As(err, &hold) || !hold.Until.Equal(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)) || delivered != 0 {
		t.Fatalf("Sev 4 at night: err %v, delivered %d; want held until 09:00", err, delivered)
	}
	refused := &incident.Event{Kind: incident.ActionRefused, Incident: sev4.Incident}
	if _, err := h.Notify(context.Background(), refused); err != nil || delivered != 1 {
		t.Fatalf("an answer to a Sev 4 click at night: %v, delivered %d; want delivered", err, delivered)
	}
	sev3 := &incident.Event{Kind: incident.Opened, Incident: incident.Incident{Severity: 3, PeakSeverity: 3}}
	if _, err := h.Notify(context.Background(), sev3); err != nil || delivered != 2 {
		t.Fatalf("Sev 3 at night: %v, delivered %d; want delivered", err, delivered)
	}
	h.Now = func() time.Time { return night.Add(11 * time.Hour) }
	if _, err := h.Notify(context.Background(), sev4); err != nil || delivered != 3 {
		t.Fatalf("Sev 4 at 10:00: %v; want delivered", err)
	}
}

// A held Sev 4 incident that escalates goes out at once.
func TestHeldIncidentThatEscalatesIsReleased(t *testing.T) {
	bh, _ := ParseBusinessHours("UTC", "09:00", "18:00", nil)
	night := time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC)
	peak := severity.Level(4)
	delivered := 0
	h := &HeldOutsideHours{
		Notifier:   notifierFunc(func(context.Context, *incident.Event) (bool, error) { delivered++; return false, nil }),
		Hours:      bh,
		Severities: map[severity.Level]bool{4: true},
		Now:        func() time.Time { return night },
		Peak:       func(string) (severity.Level, bool) { return peak, true },
	}
	held := &incident.Event{Kind: incident.Opened, Incident: incident.Incident{ID: "i", Severity: 4, PeakSeverity: 4}}
	_, err := h.Notify(context.Background(), held)
	var hold *HoldError
	if !errors.As(err, &hold) || !hold.Until.Equal(night.Add(time.Minute)) {
		t.Fatalf("held: %v; want a hold rechecked within a minute", err)
	}
	peak = 1 // escalated meanwhile
	if _, err := h.Notify(context.Background(), held); err != nil || delivered != 1 {
		t.Fatalf("after escalation: %v, delivered %d; want delivered now", err, delivered)
	}
}
