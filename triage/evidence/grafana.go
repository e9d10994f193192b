package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/amtriage/amtriage/rules"
)

// Grafana renders dashboard panels with Grafana's render API:
// GET /render/d-solo/<uid>/?panelId=N&from=&to=&width=&height=&timeout=
// (from and to in epoch ms, timeout in seconds), authenticated with the
// service account token, answering image/png. It needs Grafana's image
// renderer; without one Grafana answers an error, which the evidence notes.
type Grafana struct {
	URL    string // base, no trailing slash
	Token  string
	Render rules.GrafanaRender
	Client *http.Client // default: one with no timeout of its own (the context's applies)
}

// errTooLarge carries the size of a PNG over the bound.
type errTooLarge struct{ more int64 }

func (e errTooLarge) Error() string { return fmt.Sprintf("… clipped: %d bytes more", e.more) }

// maxDrain bounds what is read past the bound to say how much larger a PNG is.
const maxDrain = 8 << 20

// RenderPanel fetches one panel's PNG over [from, to], at most maxBytes of
// it: a larger one is an errTooLarge saying by how much.
func (g *Grafana) RenderPanel(ctx context.Context, panel int64, from, to time.Time, maxBytes int) ([]byte, error) {
	if g.Render.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(g.Render.Timeout))
		defer cancel()
	}
	q := url.Values{}
	q.Set("panelId", strconv.FormatInt(panel, 10))
	q.Set("from", strconv.FormatInt(from.UnixMilli(), 10))
	q.Set("to", strconv.FormatInt(to.UnixMilli(), 10))
	q.Set("width", strconv.Itoa(g.Render.Width))
	q.Set("height", strconv.Itoa(g.Render.Height))
	if g.Render.Timeout > 0 {
		q.Set("timeout", strconv.Itoa(max(int(time.Duration(g.Render.Timeout)/time.Second), 1)))
	}
	u := g.URL + "/render/d-solo/" + url.PathEscape(g.Render.DashboardUID) + "/?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("grafana render: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+g.Token)
	req.Header.Set("Accept", "image/png")
	client := g.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text repeats the URL
			err = ue.Err
		}
		return nil, fmt.Errorf("grafana render of panel %d: %w", panel, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (check grafana.token_file)"
		}
		return nil, fmt.Errorf("grafana render of panel %d: HTTP %d%s", panel, resp.StatusCode, hint)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("grafana render of panel %d: reading: %w", panel, err)
	}
	if !bytes.HasPrefix(body, pngMagic) {
		return nil, fmt.Errorf("grafana render of panel %d: the answer is not a PNG (Content-Type %q)", panel, resp.Header.Get("Content-Type"))
	}
	if len(body) > maxBytes {
		rest, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return nil, errTooLarge{more: int64(len(body)-maxBytes) + rest}
	}
	return body, nil
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")
