package triage

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/amtriage/amtriage/triage/postmortem"
)

// postmortemAnswer answers GET /api/incidents/{id}/postmortem: the
// incident's post-mortem as Markdown, or 404 JSON.
func (a *API) postmortemAnswer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rep, ok := a.Pipeline.Postmortem(id, time.Now().UTC(), a.Store != nil && a.Store.HasEvidence(id))
	if !ok {
		a.fail(w, http.StatusNotFound, fmt.Sprintf("no incident %q (resolved ones are kept for incidents.retention)", id))
		return
	}
	var b bytes.Buffer
	if err := postmortem.Render(&b, rep); err != nil {
		a.fail(w, http.StatusInternalServerError, "could not render the post-mortem")
		return
	}
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}
