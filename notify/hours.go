package notify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// BusinessHours is a weekly window in a time zone, e.g. Mon–Fri 09:00–18:00
// Europe/Berlin.
type BusinessHours struct {
	Location   *time.Location
	Start, End time.Duration // since local midnight
	Days       [7]bool       // by time.Weekday
}

// ParseBusinessHours reads "09:00", "18:00", a zone name ("" is UTC) and
// weekday names ("mon".."sun"; empty means Monday to Friday).
func ParseBusinessHours(zone, start, end string, days []string) (BusinessHours, error) {
	var bh BusinessHours
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return bh, fmt.Errorf("business hours time zone %q: %w", zone, err)
	}
	bh.Location = loc
	if bh.Start, err = clock(start); err != nil {
		return bh, fmt.Errorf("business hours start: %w", err)
	}
	if bh.End, err = clock(end); err != nil {
		return bh, fmt.Errorf("business hours end: %w", err)
	}
	if bh.End <= bh.Start {
		return bh, fmt.Errorf("business hours end %s is not after start %s", end, start)
	}
	if len(days) == 0 {
		days = []string{"mon", "tue", "wed", "thu", "fri"}
	}
	names := map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
		"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}
	for _, d := range days {
		wd, ok := names[strings.ToLower(strings.TrimSpace(d))[:min(3, len(strings.TrimSpace(d)))]]
		if !ok {
			return bh, fmt.Errorf("business hours day %q: want mon..sun", d)
		}
		bh.Days[wd] = true
	}
	return bh, nil
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Open reports whether t falls inside business hours.
func (bh BusinessHours) Open(t time.Time) bool {
	lt := t.In(bh.Location)
	// The wall clock, not the time elapsed since midnight: on a day that
	// changes to or from daylight saving time the two differ by an hour.
	h, m, sec := lt.Clock()
	wall := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(lt.Nanosecond())
	return bh.Days[lt.Weekday()] && wall >= bh.Start && wall < bh.End
}

// Next returns the next opening at or after t (t itself when open).
func (bh BusinessHours) Next(t time.Time) time.Time {
	if bh.Open(t) {
		return t
	}
	lt := t.In(bh.Location)
	for i := 0; i < 8; i++ {
		// The opening's wall-clock time that day (time.Date moves a time
		// inside a spring-forward gap past it).
		open := time.Date(lt.Year(), lt.Month(), lt.Day()+i, int(bh.Start/time.Hour), int(bh.Start%time.Hour/time.Minute), 0, 0, bh.Location)
		if bh.Days[open.Weekday()] && open.After(t) {
			return open
		}
	}
	return t // no business day configured: never hold
}

// HeldOutsideHours delays a receiver's events for incidents at the given
// severities until business hours (the SPEC's Sev 4: "held until business
// hours"). Held events cost no delivery attempt; the incident's later events
// wait behind them, other incidents do not.
type HeldOutsideHours struct {
	Notifier
	Hours      BusinessHours
	Severities map[severity.Level]bool
	Now        func() time.Time
	// Peak, when set, gives the incident's peak severity now: a held event
	// of an incident that has since escalated goes out at once, not in the
	// morning (its queued escalation waits behind it).
	Peak func(incidentID string) (severity.Level, bool)
}

// recheck bounds a hold, so an escalation is noticed within a minute.
const recheck = time.Minute

// Notify implements Notifier.
func (h *HeldOutsideHours) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	peak := ev.Incident.PeakSeverity
	if h.Peak != nil {
		if p, ok := h.Peak(ev.Incident.ID); ok && p < peak {
			peak = p
		}
	}
	// A refusal answers a user who just clicked (response_url lasts 30
	// minutes): it is not a post to wait for the morning.
	if h.Severities[peak] && !h.Hours.Open(now) && ev.Kind != incident.ActionRefused {
		until := h.Hours.Next(now)
		if h.Peak != nil && until.Sub(now) > recheck {
			until = now.Add(recheck)
		}
		return true, &HoldError{Until: until, Reason: fmt.Sprintf("Sev %d waits for business hours", peak)}
	}
	return h.Notifier.Notify(ctx, ev)
}

// IsPage forwards to the wrapped receiver.
func (h *HeldOutsideHours) IsPage(ev *incident.Event) bool {
	p, ok := h.Notifier.(PageReporter)
	return ok && p.IsPage(ev)
}

// Methods forwards to the wrapped receiver (notify.MethodReporter).
func (h *HeldOutsideHours) Methods(ev *incident.Event) ([]string, bool) {
	if m, ok := h.Notifier.(MethodReporter); ok {
		return m.Methods(ev)
	}
	return nil, false
}

// Takes is the wrapped receiver's.
func (h *HeldOutsideHours) Takes(kind incident.EventKind) bool { return Takes(h.Notifier, kind) }
