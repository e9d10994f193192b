package triage

import (
	"net/http"
	"strconv"
	"strings"
)

// evidenceRoutes serves each Sev 1–2 incident's evidence (triage/evidence)
// behind the API's auth: the JSON record, and its panels' PNGs.
func (a *API) evidenceRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/incidents/{id}/evidence", a.authed(http.HandlerFunc(a.evidence)))
	mux.Handle("GET /api/incidents/{id}/evidence/panels/{panel}", a.authed(http.HandlerFunc(a.evidencePanel)))
}

func (a *API) evidence(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, ok, err := a.Store.Evidence(id)
	if err != nil {
		a.Log.Error("reading evidence", "incident", id, "err", err)
		a.fail(w, http.StatusInternalServerError, "reading the evidence failed")
		return
	}
	if !ok {
		a.noEvidence(w, id)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rec)
}

func (a *API) evidencePanel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	name, isPNG := strings.CutSuffix(r.PathValue("panel"), ".png")
	panel, err := strconv.ParseInt(name, 10, 64)
	if !isPNG || err != nil || panel <= 0 {
		a.fail(w, http.StatusNotFound, "no such panel: want /api/incidents/{id}/evidence/panels/{panel id}.png")
		return
	}
	img, ok, err := a.Store.EvidencePNG(id, panel)
	if err != nil {
		a.Log.Error("reading evidence", "incident", id, "err", err)
		a.fail(w, http.StatusInternalServerError, "reading the evidence failed")
		return
	}
	if !ok {
		if a.Store.HasEvidence(id) {
			a.fail(w, http.StatusNotFound, "incident "+strconv.Quote(id)+" has no PNG of panel "+name)
			return
		}
		a.noEvidence(w, id)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(img)
}

// noEvidence answers 404 saying whether the incident is unknown or has no
// evidence (not Sev 1–2, or still being gathered).
func (a *API) noEvidence(w http.ResponseWriter, id string) {
	if _, known := a.Pipeline.Incident(id); !known {
		a.fail(w, http.StatusNotFound, "no incident "+strconv.Quote(id))
		return
	}
	a.fail(w, http.StatusNotFound, "incident "+strconv.Quote(id)+" has no evidence (yet): it is gathered when an incident is declared at Sev 1 or 2")
}
