// Package heartbeat is the dead man's switch. Each Alertmanager sends an
// always-firing heartbeat alert (Watchdog) with a short repeat_interval;
// once one has been seen from an Alertmanager, its silence for longer than
// missing_after opens a Sev 1 incident for the alerting pipeline, and its
// next heartbeat resolves it. The package decides; it does no I/O and reads
// no clock: the pipeline feeds it arrivals and the time, and folds the
// batches it returns into the incident book like any notification.
package heartbeat

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// Service is the service of the incidents the switch opens.
const Service = "alerting-pipeline"

// Alertname is the alertname of the alert that stands for a missing heartbeat.
const Alertname = "AlertmanagerHeartbeatMissing"

// Quiet reports whether an alert never forms an incident: it is labelled
// severity="none" (the heartbeat convention of kube-prometheus: Watchdog,
// InfoInhibitor) or it is the heartbeat itself.
func Quiet(labels map[string]string, heartbeat string) bool {
	return labels["severity"] == "none" || (heartbeat != "" && labels["alertname"] == heartbeat)
}

// StartGrace is how long after amtriage starts a silence waits for a
// heartbeat before it opens an incident (at most missing_after): while
// amtriage was down, Alertmanager could not deliver, and its next heartbeat
// (every minute on the shipped route, retried after a failure) proves more
// than the silence did. The clock is not reset: a silence that began before
// the restart is judged from its start.
const StartGrace = 2 * time.Minute

// Switch remembers when each Alertmanager's heartbeat last arrived.
type Switch struct {
	missingAfter time.Duration
	judgeFrom    time.Time            // no incident opens before it
	last         map[string]time.Time // externalURL → last heartbeat
	judged       time.Time            // the previous Due's time, with its monotonic reading if any
	// elapsed, when set (tests), is the monotonic clock to compare the
	// wall clock with; otherwise the times' own monotonic readings are
	// (time.Now carries one; a time without one never looks stepped).
	elapsed  func() time.Duration
	judgedAt time.Duration
}

// ClockStep is how far the wall clock may move against the monotonic clock
// between two judgements before the switch takes it for a step (NTP, a VM
// resumed): the silences it measured in the old time are then not judged
// until StartGrace has passed, as after a restart.
const ClockStep = time.Minute

// NormalizeURL is the Alertmanager's identity for the switch: the
// externalURL with its scheme and host in lower case and no trailing slash,
// so "HTTP://AM0:9093/" and "http://am0:9093" are one Alertmanager, not a
// ghost that pages when the form changes.
func NormalizeURL(externalURL string) string {
	u, err := url.Parse(strings.TrimSpace(externalURL))
	if err != nil || u.Host == "" {
		// Not a URL: kept as it is, but without control characters, as it
		// goes into titles, PagerDuty summaries and Slack text.
		raw := strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, externalURL)
		return strings.TrimRight(strings.TrimSpace(raw), "/")
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

// New returns a switch that knows the heartbeats in last (as stored), for
// an amtriage started at started.
func New(missingAfter time.Duration, last map[string]time.Time, started time.Time) *Switch {
	s := &Switch{missingAfter: missingAfter, judgeFrom: started.Add(min(missingAfter, StartGrace)), last: map[string]time.Time{}}
	maps.Copy(s.last, last)
	return s
}

// Last is when the heartbeat of every Alertmanager seen last arrived.
func (s *Switch) Last() map[string]time.Time { return maps.Clone(s.last) }

// Beat records a heartbeat from externalURL that arrived at at, and
// returns the previous one: the start of the silence it ends, whose
// incident (see Key) it resolves; zero for the first. recorded is false,
// and nothing changes, for a heartbeat not newer than the last (requests
// committed out of order) unless older by more than ClockStep (the clock
// went back), or without an externalURL (nothing names the Alertmanager).
func (s *Switch) Beat(externalURL string, at time.Time) (since time.Time, recorded bool) {
	prev, seen := s.last[externalURL]
	// An arrival a little before the last is a reordering of concurrent
	// requests; one long before it means the clock went back: that
	// heartbeat still proves the pipeline works, and the silence is
	// measured from it in the new time.
	if externalURL == "" || (seen && !at.After(prev) && prev.Sub(at) <= ClockStep) {
		return time.Time{}, false
	}

	s.last[externalURL] = at.UTC()
	return prev, true
}

// Due returns, for every Alertmanager silent for longer than missing_after
// at now, the notification that keeps its incident open: applying it again
// at each sweep is a redelivery, which changes nothing but refreshes the
// alert against staleness.
func (s *Switch) Due(now time.Time) []incident.Batch {
	var mono time.Duration
	if s.elapsed != nil {
		mono = s.elapsed()
	}
	if prev := s.judged; !prev.IsZero() {
		passed := now.Sub(prev) // on the monotonic clock when both have a reading
		if s.elapsed != nil {
			passed = mono - s.judgedAt
		}
		if step := now.Round(0).Sub(prev.Round(0)) - passed; step > ClockStep || step < -ClockStep {
			s.judgeFrom = now.Add(min(s.missingAfter, StartGrace))
		}
	}
	s.judged, s.judgedAt = now, mono
	if now.Before(s.judgeFrom) {
		return nil
	}
	var out []incident.Batch
	for _, url := range slices.Sorted(maps.Keys(s.last)) {
		since := s.last[url]
		if now.Sub(since) > s.missingAfter {
			o := observation(url, since, s.missingAfter)
			out = append(out, incident.Batch{At: now, ExternalURL: url, Observations: []incident.Observation{o}})
		}
	}
	return out
}

// Forget stops watching the Alertmanagers silent for longer than after at
// now (incidents.retention: retired, or renamed): they are returned with the
// start of their silence, so that its incident can be resolved, and
// forgotten. State so follows the Alertmanagers that exist, not history.
func (s *Switch) Forget(now time.Time, after time.Duration) map[string]time.Time {
	if after <= 0 {
		return nil
	}
	var out map[string]time.Time
	for url, since := range s.last {
		if now.Sub(since) > after {
			if out == nil {
				out = map[string]time.Time{}
			}
			out[url] = since
			delete(s.last, url)
		}
	}
	return out
}

// Resolved is the notification that resolves the silence of externalURL
// since since, ended by a heartbeat at at.
func (s *Switch) Resolved(externalURL string, since, at time.Time) incident.Batch {
	o := observation(externalURL, since, s.missingAfter)
	o.Alert.Status, o.Alert.EndsAt = incident.Resolved, at.UTC()
	return incident.Batch{At: at, ExternalURL: externalURL, Observations: []incident.Observation{o}}
}

// Key is the occurrence key of the silence of externalURL since since.
func Key(externalURL string, since time.Time) string {
	return fingerprint(externalURL) + "@" + since.UTC().Format(time.RFC3339Nano)
}

// Owns reports whether the switch opened inc: nothing re-triages it, no
// source measures a heartbeat.
func Owns(inc *incident.Incident) bool {
	return inc.Service == Service && len(inc.Unit) > len(Service) && inc.Unit[:len(Service)+1] == Service+"\x00"
}

func fingerprint(externalURL string) string { return "heartbeat:" + externalURL }

func observation(url string, since time.Time, missingAfter time.Duration) incident.Observation {
	since = since.UTC()
	return incident.Observation{
		Service: Service,
		Unit:    Service + "\x00" + url, // one incident per Alertmanager
		Decision: severity.Decision{Severity: 1, Reasons: []string{
			fmt.Sprintf("dead man's switch: no heartbeat from %s for more than %s (the last arrived at %s): its alerts may reach no one",
				url, missingAfter, since.Format(time.RFC3339)),
		}},
		Alert: incident.Alert{
			Key:         Key(url, since),
			Fingerprint: fingerprint(url),
			Name:        Alertname,
			Status:      incident.Firing,
			StartsAt:    since,
			Labels:      map[string]string{"alertname": Alertname, "alertmanager": url, "service": Service, "severity": "critical"},
			Annotations: map[string]string{"summary": "no heartbeat from " + url},
		},
	}
}
