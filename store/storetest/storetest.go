// Package storetest is the contract every store.Store keeps, as one table
// of tests that each backend runs (store/boltstore, store/pgstore): what
// the pipeline and the deliverers rely on, checked through the interface
// alone. Where the backends differ in mechanism (bbolt trims the inbox
// when told, PostgreSQL deletes folded-in entries in Apply) the tests
// check what a caller observes.
package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
)

// Backend opens a fresh, empty store ready for every write (a PostgreSQL
// store leads) and returns reopen, which closes the last store it opened
// on those data (s, at first) and opens them again, ready for every write,
// as a restarted process would. The backend closes what is still open
// when the test ends.
type Backend func(t testing.TB) (s store.Store, reopen func() store.Store)

// Run runs the contract against b.
func Run(t *testing.T, b Backend) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, b) })
	}
}

var tests = []struct {
	name string
	run  func(*testing.T, Backend)
}{
	{"InboxAppendNumbersAcrossCalls", testInboxAppendNumbers},
	{"InboxReadWindow", testInboxReadWindow},
	{"InboxRoundTripsArrivalAndReplayed", testInboxRoundTrip},
	{"InboxReadsManyInOrder", testInboxMany},
	{"InboxProcessedIsNotReadAgainAfterReopen", testInboxProcessedAfterReopen},
	{"StateRoundTrip", testStateRoundTrip},
	{"StateDeletesAndPrunes", testStateDeletesAndPrunes},
	{"StatePruneTakesReceiverStateAndEvidence", testPruneTakesReceiverStateAndEvidence},
	{"StateKeysHoldWhatAWebhookMayCarry", testStateKeysHoldAnyBytes},
	{"StateKeysAtTheWebhooksLimits", testStateKeysAtTheWebhooksLimits},
	{"OutboxFansOutToEveryReceiver", testOutboxFanOut},
	{"OutboxFansOutByKind", testOutboxFanOutTakes},
	{"OutboxNextHeadsPerIncident", testOutboxHeads},
	{"OutboxNextLooksPastALongIncident", testOutboxLongIncident},
	{"OutboxRetryPersists", testOutboxRetry},
	{"OutboxDeadLetterMovesTheEnvelope", testOutboxDeadLetter},
	{"OutboxSurvivesReopen", testOutboxReopen},
	{"ReceiverStateRoundTrip", testReceiverState},
	{"DeadLettersListReadRemove", testDeadLettersList},
	{"DeadLetterReplayOnce", testDeadLetterReplay},
	{"DeadLetterReplayConcurrentOnce", testDeadLetterReplayConcurrent},
	{"DeadLettersPruned", testDeadLettersPruned},
	{"Evidence", testEvidence},
}

// t0 is the suite's clock: nanoseconds set, so a store that rounds shows.
var t0 = time.Date(2026, 11, 23, 19, 20, 45, 565975123, time.UTC)

// newAlert is a firing alert of fingerprint fp as the book keeps it, with
// every field a record leaves out or restores set.
func newAlert(fp string, start time.Time, reasons ...string) *incident.Alert {
	return &incident.Alert{
		Key: fp + "@" + start.Format(time.RFC3339Nano), Fingerprint: fp, Name: "HighErrorRate",
		Status: incident.Firing, StartsAt: start,
		Labels:       map[string]string{"alertname": "HighErrorRate", "service": "api", "fp": fp},
		Annotations:  map[string]string{"summary": "errors on " + fp},
		GeneratorURL: "http://prometheus/graph", GroupKey: "{}:{service=\"api\"}",
		ExternalURL: "http://am:9093", Receiver: "amtriage",
		Decision: severity.Decision{Severity: 2, Rule: 13, Reasons: reasons},
		LastSeen: start.Add(time.Minute),
	}
}

// newIncident is an open incident decided by its alert decisive.
func newIncident(id string, decisive *incident.Alert, reasons ...string) *incident.Incident {
	return &incident.Incident{
		ID: id, Service: "api", Unit: "api", Title: "INCIDENT: api - " + id, Status: incident.Firing,
		Severity: 2, PeakSeverity: 2, Rule: 13, Reasons: reasons, Decisive: decisive.Key,
		StartedAt: decisive.StartsAt, Firing: 1, State: incident.StateOpen,
		Alerts: map[string]*incident.Alert{decisive.Key: decisive},
	}
}

// event is an event of inc carrying its alerts.
func event(kind incident.EventKind, at time.Time, inc *incident.Incident) incident.Event {
	ev := incident.Event{Kind: kind, At: at, Incident: *inc, AlertsTotal: len(inc.Alerts)}
	ev.Incident.Alerts = nil
	for _, a := range inc.Alerts {
		ev.Alerts = append(ev.Alerts, *a)
	}
	return ev
}

// opened is a commit that opens one incident per id, each with one alert,
// queuing an Opened event for receivers.
func opened(lastSeq uint64, receivers []string, ids ...string) (*store.Commit, []*incident.Incident) {
	ch := &incident.Changes{}
	var incs []*incident.Incident
	for i, id := range ids {
		a := newAlert(fmt.Sprintf("fp-%s", id), t0.Add(time.Duration(i)*time.Second), "Q2: errors [prometheus]")
		inc := newIncident(id, a, a.Decision.Reasons...)
		ch.Incidents = append(ch.Incidents, inc)
		ch.Alerts = append(ch.Alerts, incident.AlertRef{IncidentID: id, Alert: a})
		ch.Events = append(ch.Events, event(incident.Opened, t0.Add(time.Duration(i)*time.Millisecond), inc))
		incs = append(incs, inc)
	}
	return &store.Commit{LastSeq: lastSeq, Changes: []*incident.Changes{ch}, Receivers: receivers}, incs
}

func apply(t testing.TB, s store.Store, c *store.Commit) {
	t.Helper()
	if err := s.Apply(c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func load(t testing.TB, s store.Store) *store.LoadedState {
	t.Helper()
	ls, err := s.LoadState()
	if err != nil {
		t.Fatalf("LoadState: %v", err)
	}
	return ls
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
