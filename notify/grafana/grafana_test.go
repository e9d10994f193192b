package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/fakes/grafana"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/severity"
)

const token = "glsa_s3cr3t_token_value"

// memState is an in-memory notify.ReceiverState, JSON-encoded like the store.
type memState struct {
	mu      sync.Mutex
	m       map[string][]byte
	saveErr error
	saves   int
}

func newMemState() *memState { return &memState{m: map[string][]byte{}} }

func (s *memState) LoadReceiverState(receiver, incidentID string, v any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.m[receiver+"/"+incidentID]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

func (s *memState) SaveReceiverState(receiver, incidentID string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveErr != nil {
		return s.saveErr
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.m[receiver+"/"+incidentID] = raw
	s.saves++
	return nil
}

// recorded is the annotation id saved for the incident, 0 if none.
func (s *memState) recorded(incidentID string) int64 {
	var st State
	if _, err := s.LoadReceiverState(receiverName, incidentID, &st); err != nil {
		return 0
	}
	return st.ID
}

func (s *memState) id(t *testing.T, incidentID string) int64 {
	t.Helper()
	var st State
	found, err := s.LoadReceiverState(receiverName, incidentID, &st)
	if err != nil || !found {
		t.Fatalf("no state for %s (err %v)", incidentID, err)
	}
	return st.ID
}

var (
	started  = time.Date(2025, 3, 4, 10, 0, 0, 123e6, time.UTC)
	resolved = started.Add(90*time.Minute + 1500*time.Millisecond)
)

func newIncident(sev severity.Level) incident.Incident {
	return incident.Incident{
		ID:           "api-0123456789ab",
		Service:      "api",
		Title:        "INCIDENT: api - High error rate since 10:00 UTC",
		Status:       incident.Firing,
		Severity:     sev,
		PeakSeverity: sev,
		Rule:         3,
		Reasons: []string{
			"Q2: 12% of requests failing (≥ 10%) [prometheus]",
			"reachable: true [probe]",
		},
		StartedAt: started,
	}
}

func opened(inc incident.Incident) *incident.Event {
	return &incident.Event{Kind: incident.Opened, At: inc.StartedAt, Incident: inc}
}

func changed(inc incident.Incident, prev severity.Level) *incident.Event {
	return &incident.Event{Kind: incident.SeverityChanged, At: inc.StartedAt.Add(5 * time.Minute), Incident: inc, PreviousSeverity: prev}
}

func resolvedEvent(inc incident.Incident) *incident.Event {
	inc.Status = incident.Resolved
	inc.ResolvedAt = resolved
	return &incident.Event{Kind: incident.ResolvedEvent, At: resolved, Incident: inc}
}

// plain is a client without in-attempt retries, so each Notify is one request
// and the outbox's retries are what the test drives.
func plain() *http.Client { return &http.Client{Timeout: 5 * time.Second} }

func setup(t *testing.T, cfg Config) (*grafana.Server, *Notifier, *memState) {
	t.Helper()
	fake := grafana.New(token)
	t.Cleanup(fake.Close)
	if cfg.URL == "" {
		cfg.URL = fake.URL
	}
	if cfg.Token == "" {
		cfg.Token = token
	}
	if cfg.Client == nil {
		cfg.Client = plain()
	}
	st := newMemState()
	n, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	return fake, n, st
}

func mustNotify(t *testing.T, n *Notifier, ev *incident.Event) {
	t.Helper()
	retry, err := n.Notify(context.Background(), ev)
	if err != nil || retry {
		t.Fatalf("Notify(%s) = %v, %v", ev.Kind, retry, err)
	}
}

func only(t *testing.T, fake *grafana.Server) grafana.Annotation {
	t.Helper()
	as := fake.Annotations()
	if len(as) != 1 {
		t.Fatalf("annotations = %d, want 1: %+v", len(as), as)
	}
	return as[0]
}

func TestName(t *testing.T) {
	_, n, _ := setup(t, Config{})
	if n.Name() != "grafana" {
		t.Errorf("Name() = %q", n.Name())
	}
	var _ notify.Notifier = n
}

func TestOpened(t *testing.T) {
	fake, n, st := setup(t, Config{URL: "", DashboardUID: "incidents", PanelID: 7})
	inc := newIncident(2)
	mustNotify(t, n, opened(inc))

	a := only(t, fake)
	if a.Time != started.UnixMilli() || a.IsRegion() {
		t.Errorf("time = %d..%d, want point at %d", a.Time, a.TimeEnd, started.UnixMilli())
	}
	if want := []string{"amtriage", "incident:api-0123456789ab", "sev2", "service:api"}; !slices.Equal(a.Tags, want) {
		t.Errorf("tags = %v, want %v", a.Tags, want)
	}
	want := inc.Title + "\nSev 2\n" + inc.Reasons[0] + "\n" + inc.Reasons[1]
	if a.Text != want {
		t.Errorf("text = %q, want %q", a.Text, want)
	}
	if a.DashboardUID != "incidents" || a.PanelID != 7 {
		t.Errorf("dashboard = %q panel %d", a.DashboardUID, a.PanelID)
	}
	var data map[string]any
	if err := json.Unmarshal(a.Data, &data); err != nil || data["incident"] != inc.ID {
		t.Errorf("data = %s (%v)", a.Data, err)
	}
	if got := st.id(t, inc.ID); got != a.ID {
		t.Errorf("stored id %d, annotation %d", got, a.ID)
	}
	if r := fake.Requests(); len(r) != 1 || r[0].Method != "POST" || r[0].Path != "/api/annotations" || !r[0].Authorized {
		t.Errorf("requests = %+v", r)
	}
}

func TestOrganizationAnnotationByDefault(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	mustNotify(t, n, opened(newIncident(3)))
	r := fake.Requests()[0]
	if strings.Contains(r.Body, "dashboardUID") || strings.Contains(r.Body, "panelId") {
		t.Errorf("body has dashboard fields: %s", r.Body)
	}
}

func TestReasonsCapped(t *testing.T) {
	inc := newIncident(3)
	inc.Reasons = nil
	for i := range 8 {
		inc.Reasons = append(inc.Reasons, fmt.Sprintf("reason %d", i))
	}
	text := Text(opened(inc))
	if !strings.Contains(text, "reason 4") || strings.Contains(text, "reason 5") || !strings.HasSuffix(text, "… and 3 more") {
		t.Errorf("text = %q", text)
	}
}

func TestSeverityChanged(t *testing.T) {
	fake, n, st := setup(t, Config{})
	inc := newIncident(3)
	mustNotify(t, n, opened(inc))
	id := st.id(t, inc.ID)

	inc.Severity, inc.PeakSeverity = 1, 1
	inc.Reasons = []string{"Q1: service unreachable [probe]"}
	mustNotify(t, n, changed(inc, 3))

	a := only(t, fake)
	if a.ID != id || a.Patches != 1 {
		t.Errorf("annotation %d patched %d times, want %d once", a.ID, a.Patches, id)
	}
	if want := []string{"amtriage", "incident:api-0123456789ab", "sev1", "service:api"}; !slices.Equal(a.Tags, want) {
		t.Errorf("tags = %v, want %v", a.Tags, want)
	}
	if !strings.Contains(a.Text, "Sev 1 (was Sev 3)") || !strings.Contains(a.Text, "Q1: service unreachable") {
		t.Errorf("text = %q", a.Text)
	}
	if a.Time != started.UnixMilli() || a.IsRegion() {
		t.Errorf("time changed: %d..%d", a.Time, a.TimeEnd)
	}
	if n := fake.Count("POST", 0); n != 1 {
		t.Errorf("POSTs = %d", n)
	}
}

func TestResolved(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	inc := newIncident(2)
	mustNotify(t, n, opened(inc))
	inc.Severity = 3 // dropped before resolving; peak stays 2
	mustNotify(t, n, changed(inc, 2))
	mustNotify(t, n, resolvedEvent(inc))

	a := only(t, fake)
	if a.Time != started.UnixMilli() || a.TimeEnd != resolved.UnixMilli() || !a.IsRegion() {
		t.Errorf("region = %d..%d, want %d..%d", a.Time, a.TimeEnd, started.UnixMilli(), resolved.UnixMilli())
	}
	if !strings.Contains(a.Text, "Sev 3, resolved after 1h30m2s (peak Sev 2)") {
		t.Errorf("text = %q", a.Text)
	}
	if want := []string{"amtriage", "incident:api-0123456789ab", "sev2", "service:api", "resolved"}; !slices.Equal(a.Tags, want) {
		t.Errorf("tags = %v, want %v", a.Tags, want)
	}
	// A redelivered resolve patches the same annotation again: still one.
	mustNotify(t, n, resolvedEvent(inc))
	if a2 := only(t, fake); a2.TimeEnd != a.TimeEnd || a2.Text != a.Text {
		t.Errorf("redelivered resolve changed it: %+v", a2)
	}
}

// Sev 4 is a plain annotation while open; on resolve it is closed into a
// region like the others (documented choice: the duration is worth showing,
// and the routing table's resolve action is "close region" for every level).
func TestSev4(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	inc := newIncident(4)
	mustNotify(t, n, opened(inc))
	if a := only(t, fake); a.IsRegion() || !slices.Contains(a.Tags, "sev4") {
		t.Errorf("open Sev 4 = %+v", a)
	}
	mustNotify(t, n, resolvedEvent(inc))
	if a := only(t, fake); a.TimeEnd != resolved.UnixMilli() {
		t.Errorf("resolved Sev 4 = %+v", a)
	}
}

func TestRedeliveredOpened(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	inc := newIncident(1)
	mustNotify(t, n, opened(inc))
	mustNotify(t, n, opened(inc))
	only(t, fake)
	if got := fake.Count("POST", 0); got != 1 {
		t.Errorf("POSTs = %d, want 1", got)
	}
	if got := len(fake.Requests()); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

// A restart between the POST and the ack: a new Notifier over the same state.
func TestRedeliveredOpenedAfterRestart(t *testing.T) {
	fake, n, st := setup(t, Config{})
	inc := newIncident(2)
	mustNotify(t, n, opened(inc))
	n2, err := New(Config{URL: fake.URL, Token: token, Client: plain()}, st)
	if err != nil {
		t.Fatal(err)
	}
	mustNotify(t, n2, opened(inc))
	mustNotify(t, n2, resolvedEvent(inc))
	if a := only(t, fake); a.TimeEnd != resolved.UnixMilli() {
		t.Errorf("annotation = %+v", a)
	}
}

func TestResolveWithoutOpened(t *testing.T) {
	fake, n, st := setup(t, Config{})
	inc := newIncident(2)
	mustNotify(t, n, resolvedEvent(inc))
	a := only(t, fake)
	if a.Time != started.UnixMilli() || a.TimeEnd != resolved.UnixMilli() {
		t.Errorf("region = %d..%d", a.Time, a.TimeEnd)
	}
	if !strings.Contains(a.Text, "resolved after 1h30m2s") || !slices.Contains(a.Tags, "resolved") {
		t.Errorf("annotation = %+v", a)
	}
	if fake.Count("POST", 200) != 1 || fake.Count("PATCH", 0) != 0 {
		t.Errorf("requests = %+v", fake.Requests())
	}
	if st.id(t, inc.ID) != a.ID {
		t.Error("id not stored")
	}
}

func TestSeverityChangedWithoutOpened(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	inc := newIncident(1)
	mustNotify(t, n, changed(inc, 2))
	if a := only(t, fake); a.IsRegion() || !slices.Contains(a.Tags, "sev1") {
		t.Errorf("annotation = %+v", a)
	}
}

func TestStatusUpdateIgnored(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	ev := &incident.Event{Kind: incident.StatusUpdate, At: started, Incident: newIncident(1)}
	mustNotify(t, n, ev)
	if r := fake.Requests(); len(r) != 0 {
		t.Errorf("requests = %+v", r)
	}
}

func TestBadToken(t *testing.T) {
	const wrong = "glsa_wrong_but_secret_token"
	fake, n, st := setup(t, Config{Token: wrong})
	retry, err := n.Notify(context.Background(), opened(newIncident(1)))
	if err == nil || retry {
		t.Fatalf("Notify = %v, %v; want permanent error", retry, err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("err = %v", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(fmt.Sprintf("%+v %v %+v %#v", err, n, n, n), wrong) {
		t.Errorf("error or notifier leaks the token: %v", err)
	}
	if len(fake.Annotations()) != 0 || st.recorded("api-0123456789ab") != 0 {
		t.Error("side effect on 401")
	}
}

func TestPermanentStatuses(t *testing.T) {
	for _, status := range []int{400, 403, 404} {
		fake, n, _ := setup(t, Config{})
		fake.FailNext(1, status)
		retry, err := n.Notify(context.Background(), opened(newIncident(1)))
		if err == nil || retry {
			t.Errorf("%d: Notify = %v, %v; want permanent error", status, retry, err)
		}
	}
}

// A resolve without any usable end time never sends an inverted range (which
// Grafana answers with 400): the end is clamped to the start.
func TestResolveNeverInvertsRange(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	mustNotify(t, n, opened(newIncident(1)))
	bad := resolvedEvent(newIncident(1))
	bad.Incident.ResolvedAt = started.Add(-time.Hour)
	mustNotify(t, n, bad)
	if a := only(t, fake); a.TimeEnd != a.Time {
		t.Errorf("range = %d..%d", a.Time, a.TimeEnd)
	}
}

func TestServerErrorThenSuccess(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	fake.FailNext(1, 500)
	ev := opened(newIncident(1))
	retry, err := n.Notify(context.Background(), ev)
	if err == nil || !retry {
		t.Fatalf("first Notify = %v, %v; want retryable error", retry, err)
	}
	mustNotify(t, n, ev) // the outbox's next attempt
	only(t, fake)
	if got := fake.Count("POST", 200); got != 1 {
		t.Errorf("successful POSTs = %d", got)
	}
}

// The default client leaves a 5xx to the outbox: the POST may have landed.
func TestDefaultClientLeavesServerErrorsToTheOutbox(t *testing.T) {
	fake := grafana.New(token)
	defer fake.Close()
	n, err := New(Config{URL: fake.URL + "/", Token: token}, newMemState())
	if err != nil {
		t.Fatal(err)
	}
	fake.FailNext(1, 502)
	if retry, err := n.Notify(context.Background(), opened(newIncident(1))); !retry || err == nil || len(fake.Requests()) != 1 {
		t.Fatalf("502: retry=%v err=%v after %d requests; want one request and a retryable error", retry, err, len(fake.Requests()))
	}
	mustNotify(t, n, opened(newIncident(1)))
	if a := fake.Annotations(); len(a) != 1 {
		t.Errorf("annotations %d, want 1", len(a))
	}
}

func TestRateLimited(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	fake.Fail(grafana.Fault{Status: 429, RetryAfter: 7})
	retry, err := n.Notify(context.Background(), opened(newIncident(1)))
	ra, ok := errors.AsType[*notify.RetryAfterError](err)
	if !retry || !ok || ra.After != 7*time.Second {
		t.Fatalf("Notify = %v, %v; want RetryAfterError(7s)", retry, err)
	}
	if ra.Method == "" {
		t.Error("the rate limit names no method: the outbox would not hold the receiver's other calls, and they would come due in a burst")
	}
	fake.Fail(grafana.Fault{Status: 429})
	_, err = n.Notify(context.Background(), opened(newIncident(1)))
	if ra, ok := errors.AsType[*notify.RetryAfterError](err); !ok || ra.After != defaultRetryAfter {
		t.Errorf("without Retry-After: %v", err)
	}
}

func TestPatchNotFoundRecreates(t *testing.T) {
	fake, n, st := setup(t, Config{})
	inc := newIncident(3)
	mustNotify(t, n, opened(inc))
	first := st.id(t, inc.ID)
	fake.Delete(first)

	inc.Severity, inc.PeakSeverity = 2, 2
	mustNotify(t, n, changed(inc, 3))
	a := only(t, fake)
	if a.ID == first || st.id(t, inc.ID) != a.ID {
		t.Errorf("annotation %d, stored %d, first %d", a.ID, st.id(t, inc.ID), first)
	}
	if a.Time != started.UnixMilli() || !slices.Contains(a.Tags, "sev2") || a.IsRegion() {
		t.Errorf("re-created = %+v", a)
	}
	if fake.Count("PATCH", 404) != 1 {
		t.Errorf("requests = %+v", fake.Requests())
	}

	// Deleted again before the resolve: re-created as a complete region.
	fake.Delete(a.ID)
	mustNotify(t, n, resolvedEvent(inc))
	r := only(t, fake)
	if r.Time != started.UnixMilli() || r.TimeEnd != resolved.UnixMilli() || st.id(t, inc.ID) != r.ID {
		t.Errorf("re-created region = %+v", r)
	}
}

func TestHang(t *testing.T) {
	fake, n, st := setup(t, Config{})
	fake.HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	retry, err := n.Notify(ctx, opened(newIncident(1)))
	if !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, %v; want retryable deadline error", retry, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	if strings.Contains(err.Error(), token) {
		t.Error("token in error")
	}
	if len(fake.Annotations()) != 0 || st.recorded("api-0123456789ab") != 0 {
		t.Error("side effect")
	}
	mustNotify(t, n, opened(newIncident(1)))
	only(t, fake)
}

func TestHangDefaultClient(t *testing.T) {
	fake := grafana.New(token)
	defer fake.Close()
	n, err := New(Config{URL: fake.URL, Token: token}, newMemState())
	if err != nil {
		t.Fatal(err)
	}
	fake.HangNext(5)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if retry, err := n.Notify(ctx, opened(newIncident(1))); !retry || err == nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
}

func TestNetworkErrorRetryable(t *testing.T) {
	fake := grafana.New(token)
	url := fake.URL
	fake.Close()
	n, err := New(Config{URL: url, Token: token, Client: plain()}, newMemState())
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), opened(newIncident(1)))
	if !retry || err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("Notify = %v, %v", retry, err)
	}
}

// Without the mark that a POST is under way, nothing is posted: an
// annotation whose id could not be recorded would be repeated.
func TestStateErrors(t *testing.T) {
	fake, n, st := setup(t, Config{})
	st.saveErr = errors.New("disk full")
	retry, err := n.Notify(context.Background(), opened(newIncident(1)))
	if !retry || err == nil {
		t.Errorf("save failure: %v, %v", retry, err)
	}
	if len(fake.Annotations()) != 0 {
		t.Error("POST sent without its mark")
	}
}

func TestNewValidation(t *testing.T) {
	st := newMemState()
	for name, cfg := range map[string]Config{
		"no url":        {Token: token},
		"relative url":  {URL: "grafana:3000", Token: token},
		"ftp":           {URL: "ftp://grafana", Token: token},
		"userinfo":      {URL: "http://admin:pw@grafana:3000", Token: token},
		"query":         {URL: "http://grafana:3000?x=1", Token: token},
		"no token":      {URL: "http://grafana:3000"},
		"negative pane": {URL: "http://grafana:3000", Token: token, PanelID: -1},
	} {
		if _, err := New(cfg, st); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: error leaks the password: %v", name, err)
		}
	}
	if _, err := New(Config{URL: "http://grafana:3000", Token: token}, nil); err == nil {
		t.Error("nil state: no error")
	}
	n, err := New(Config{URL: "https://grafana.example.com/sub/", Token: token}, st)
	if err != nil || n.base != "https://grafana.example.com/sub" || n.cfg.Client == nil {
		t.Errorf("New = %+v, %v", n, err)
	}
}

func TestTextCarriesDiagnosis(t *testing.T) {
	inc := newIncident(1)
	inc.Diagnosis = &diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment, Summary: "config or bad deployment: 3/3 pods CrashLoopBackOff",
		Command: "kubectl rollout undo deployment/api -n shop --to-revision=6"}
	text := Text(opened(inc))
	if !strings.Contains(text, "\nDiagnosis: config or bad deployment: 3/3 pods CrashLoopBackOff\nkubectl rollout undo deployment/api -n shop --to-revision=6") {
		t.Errorf("text = %q", text)
	}
}

// TestResolvedTextIsTheClosureMessage: the region's text at monitoring is
// the closure message, built once for every receiver.
func TestResolvedTextIsTheClosureMessage(t *testing.T) {
	inc := newIncident(1)
	inc.Status, inc.ResolvedAt = incident.Resolved, inc.StartedAt.Add(27*time.Minute)
	inc.Closure = "✅ INCIDENT RESOLVED\nDuration: 2026-03-01 14:05 UTC to 2026-03-01 14:32 UTC = 27 minutes\nFix Applied: rollback to revision 1 at 2026-03-01 14:35 UTC"
	text := Text(&incident.Event{Kind: incident.ResolvedEvent, At: inc.ResolvedAt, Incident: inc})
	if !strings.HasSuffix(text, "\n"+inc.Closure) {
		t.Errorf("text = %q", text)
	}
}

// TestReopened: an incident firing again after its resolve is the same
// annotation, a point again (no "resolved" tag) until it resolves anew.
func TestReopened(t *testing.T) {
	fake, n, _ := setup(t, Config{})
	inc := newIncident(2)
	mustNotify(t, n, opened(inc))
	mustNotify(t, n, resolvedEvent(inc))
	inc.Recurrences = 1
	mustNotify(t, n, &incident.Event{Kind: incident.Reopened, At: resolved.Add(time.Minute), Incident: inc, PreviousState: incident.StateMonitoring})
	a := only(t, fake)
	if a.IsRegion() || slices.Contains(a.Tags, "resolved") || !strings.Contains(a.Text, "Sev 2, firing again (recurrence 1)") {
		t.Errorf("reopened annotation %+v", a)
	}
	mustNotify(t, n, resolvedEvent(inc))
	if a := only(t, fake); !a.IsRegion() || a.TimeEnd != resolved.UnixMilli() {
		t.Errorf("resolved again %+v", a)
	}
}
