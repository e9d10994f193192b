package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage/evidence"
	"github.com/amtriage/amtriage/triage/kube"

	"github.com/amtriage/amtriage/internal/fakes/grafana"
)

// gatedCluster is a Kubernetes source whose log read waits for release:
// evidence still being gathered must not hold up the page.
type gatedCluster struct {
	release chan struct{}
}

func (g *gatedCluster) Snapshot(t kube.Target, at time.Time) *diagnosis.Snapshot {
	return &diagnosis.Snapshot{Namespace: t.Namespace, Workload: "deployment/" + t.Deployment,
		Pods:   []diagnosis.Pod{{Name: "checkout-1", Phase: "Running", Reason: "CrashLoopBackOff", Restarts: 3}},
		Events: []diagnosis.Event{{Time: at, Object: "Pod/checkout-1", Reason: "BackOff", Message: "Back-off restarting failed container"}}}
}

func (g *gatedCluster) TailLogs(ctx context.Context, s *diagnosis.Snapshot, _ int) (*kube.Tail, error) {
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &kube.Tail{Pod: s.Pods[0].Name, Lines: []string{"panic: config key missing"}}, nil
}

func TestEvidenceEndpoints(t *testing.T) {
	const gtoken = "glsa_render"
	g := grafana.New(gtoken)
	defer g.Close()
	cluster := &gatedCluster{release: make(chan struct{})}
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	render := rules.GrafanaRender{DashboardUID: "svc", PanelIDs: []int64{3}, Width: 800, Height: 400}
	h := servingHarness(t, cfg, func(o *Options) {
		o.Enrichment = func(prometheus.Registerer) (*Enrichment, error) {
			return &Enrichment{Evidence: &evidence.Sources{
				Cluster: cluster,
				Grafana: &evidence.Grafana{URL: g.URL, Token: gtoken, Render: render},
				Panels:  []rules.GrafanaRender{render},
				Profile: func(string) *rules.Service {
					return &rules.Service{Name: "checkout", Namespace: "shop", Deployment: "checkout"}
				},
			}}, nil
		}
	})
	auth := h.authHeader()
	h.mustPost(alertPayload("checkout", "firing", time.Now().Add(-time.Minute)), auth)
	// The page goes out while the evidence waits on the cluster.
	h.waitFor("the page", func() bool { return len(h.rec.Events()) > 0 })
	ev := h.rec.Events()[0]
	id := ev.Incident.ID
	if ev.Kind != incident.Opened || ev.Incident.Severity > 2 {
		t.Fatalf("first event %s at Sev %d, want a Sev 1-2 opening", ev.Kind, ev.Incident.Severity)
	}
	if res := h.do(http.MethodGet, "/api/incidents/"+id+"/evidence", nil, auth); res.code != http.StatusNotFound {
		t.Fatalf("evidence before it is gathered: %d %s", res.code, res.body)
	} else {
		assertErrorBody(t, res, "no evidence (yet)")
	}
	close(cluster.release)
	var got evidence.Evidence
	h.waitFor("the evidence", func() bool {
		res := h.do(http.MethodGet, "/api/incidents/"+id+"/evidence", nil, auth)
		return res.code == http.StatusOK && json.Unmarshal(res.body, &got) == nil
	})
	if got.Incident != id || got.Snapshot == nil || len(got.Events) != 1 || got.Logs == nil || len(got.Logs.Lines) != 1 ||
		len(got.Panels) != 1 || got.Panels[0].URL != "evidence/panels/3.png" || got.Bytes == 0 {
		t.Fatalf("evidence %+v", got)
	}
	res := h.do(http.MethodGet, "/api/incidents/"+id+"/evidence/panels/3.png", nil, auth)
	if res.code != http.StatusOK || res.header.Get("Content-Type") != "image/png" {
		t.Fatalf("panel: %d %s", res.code, res.header.Get("Content-Type"))
	}
	if _, err := png.Decode(bytes.NewReader(res.body)); err != nil {
		t.Fatalf("panel is not a PNG: %v", err)
	}
	if mfs := h.scrape(); scalar(mfs, "amtriage_evidence_saved_total", map[string]string{"outcome": "saved"}) != 1 ||
		histogramOf(t, mfs, "amtriage_evidence_bytes", nil).GetSampleCount() != 1 {
		t.Errorf("evidence metrics: saved %v", scalar(mfs, "amtriage_evidence_saved_total", map[string]string{"outcome": "saved"}))
	}
	tests := []struct {
		path, auth string
		code       int
		mention    string
	}{
		{"/api/incidents/" + id + "/evidence", "", http.StatusUnauthorized, ""},
		{"/api/incidents/" + id + "/evidence/panels/3.png", "", http.StatusUnauthorized, ""},
		{"/api/incidents/nope/evidence", auth, http.StatusNotFound, `no incident "nope"`},
		{"/api/incidents/nope/evidence/panels/3.png", auth, http.StatusNotFound, `no incident "nope"`},
		{"/api/incidents/" + id + "/evidence/panels/9.png", auth, http.StatusNotFound, "no PNG of panel 9"},
		{"/api/incidents/" + id + "/evidence/panels/x.gif", auth, http.StatusNotFound, "no such panel"},
	}
	for _, tt := range tests {
		res := h.do(http.MethodGet, tt.path, nil, tt.auth)
		if res.code != tt.code {
			t.Errorf("GET %s: %d, want %d (%s)", tt.path, res.code, tt.code, res.body)
			continue
		}
		if tt.code == http.StatusNotFound {
			assertErrorBody(t, res, tt.mention)
		}
	}
	if res := h.do(http.MethodPost, "/api/incidents/"+id+"/evidence", nil, auth); res.code != http.StatusMethodNotAllowed {
		t.Errorf("POST evidence: %d", res.code)
	}
	if r := g.Renders(); len(r) != 1 || r[0].PanelID != 3 || r[0].To-r[0].From != (30*time.Minute).Milliseconds() {
		t.Errorf("renders %+v", r)
	}
}
