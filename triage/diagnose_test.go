package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/webhook"
)

// namingEnricher diagnoses an alert by its alertname; with a shut gate it
// holds each diagnosis, counting how many are held at once.
type namingEnricher struct {
	mu      sync.Mutex
	gate    chan struct{}
	held    int
	maxHeld int
}

func (e *namingEnricher) Diagnose(_ context.Context, _ *signal.Evaluation, a *template.Alert, _ *rules.Service, _ severity.Decision) *diagnosis.Diagnosis {
	e.mu.Lock()
	e.held++
	e.maxHeld = max(e.maxHeld, e.held)
	gate := e.gate
	e.mu.Unlock()
	if gate != nil {
		<-gate
	}
	e.mu.Lock()
	e.held--
	e.mu.Unlock()
	return &diagnosis.Diagnosis{Category: diagnosis.Application, Summary: "diagnosis of " + a.Labels["alertname"]}
}

func withEnricher(e Enricher) func(*Options) {
	return func(o *Options) {
		o.Enrichment = func(prometheus.Registerer) (*Enrichment, error) { return &Enrichment{Enricher: e}, nil }
	}
}

// namedAlertPayload is a one-alert notification for service, named
// alertname, with its severity label and annotations.
func namedAlertPayload(service, alertname, sev string, annotations map[string]string, startsAt time.Time) []byte {
	labels := map[string]string{"alertname": alertname, "namespace": "shop", "service": service, "severity": sev}
	b, err := json.Marshal(map[string]any{
		"receiver": "triage", "status": "firing",
		"alerts": []map[string]any{{
			"status": "firing", "labels": labels, "annotations": annotations,
			"startsAt": startsAt.UTC().Format(time.RFC3339Nano), "endsAt": "0001-01-01T00:00:00Z",
			"generatorURL": "http://prometheus:9090/graph", "fingerprint": webhook.Fingerprint(labels),
		}},
		"groupLabels": map[string]string{"alertname": alertname}, "commonLabels": labels, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager:9093", "version": "4", "truncatedAlerts": 0,
		"groupKey": fmt.Sprintf(`{}:{alertname=%q}`, alertname),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// Through the pipeline: the incident keeps the diagnosis of its most severe
// alert, and the alert key the pipeline records matches the book's.
func TestIncidentKeepsTheMostSevereAlertsDiagnosis(t *testing.T) {
	h := handlerHarness(t, testConfig(t), withEnricher(&namingEnricher{}))
	p := h.d.Pipeline()
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	steps := []struct {
		alertname, sev string
		annotations    map[string]string
		wantSev        severity.Level
		want           string
	}{
		{"ApiDown", "critical", map[string]string{"reachable": "false"}, 1, "diagnosis of ApiDown"},
		{"ApiSlowish", "warning", nil, 1, "diagnosis of ApiDown"}, // Sev 3 joins: kept
		{"ApiErrors", "critical", map[string]string{"error_ratio": "0.62"}, 1, "diagnosis of ApiErrors"},
	}
	for i, st := range steps {
		h.mustPost(namedAlertPayload("api", st.alertname, st.sev, st.annotations, start.Add(time.Duration(i)*time.Minute)), "")
		if err := p.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		incs := p.OpenIncidents()
		if len(incs) != 1 {
			t.Fatalf("after %s: %d incidents, want 1", st.alertname, len(incs))
		}
		if incs[0].Severity != st.wantSev || incs[0].Diagnosis == nil || incs[0].Diagnosis.Summary != st.want {
			t.Fatalf("after %s: Sev %d, diagnosis %+v; want Sev %d, %q", st.alertname, incs[0].Severity, incs[0].Diagnosis, st.wantSev, st.want)
		}
	}
}

// A chunk of one-service notifications is diagnosed several at once, not
// notification after notification.
func TestChunkDiagnosedConcurrently(t *testing.T) {
	const services = measureParallel + 2
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	enr := &namingEnricher{gate: gate}
	h := handlerHarness(t, testConfig(t), withEnricher(enr))
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	for i := range services {
		h.mustPost(alertPayload(fmt.Sprintf("svc%d", i), "firing", start), "")
	}
	done := make(chan error, 1)
	go func() { done <- h.d.Pipeline().Drain(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		enr.mu.Lock()
		held, most := enr.held, enr.maxHeld
		enr.mu.Unlock()
		if held == measureParallel {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("at most %d diagnoses at once, want %d", most, measureParallel)
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	incs := h.d.Pipeline().OpenIncidents()
	if len(incs) != services {
		t.Fatalf("%d incidents, want %d", len(incs), services)
	}
	for _, inc := range incs {
		if inc.Diagnosis == nil || inc.Diagnosis.Summary != "diagnosis of HighErrorRate" {
			t.Errorf("%s: diagnosis %+v", inc.Service, inc.Diagnosis)
		}
	}
}
