package grafana

import (
	"bytes"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"strings"
)

// Render is one panel image the fake rendered: GET
// /render/d-solo/<uid>/?panelId=N&from=&to=&width=&height=, Grafana's
// server-side rendering of one panel (the share panel's "direct link
// rendered image", grafana.com/docs/grafana/latest/…/share_panel: width
// and height in pixels, default 800×400; from and to in epoch ms; timeout
// in seconds). Grafana answers image/png.
type Render struct {
	DashboardUID  string
	PanelID       int64
	From, To      int64
	Width, Height int
}

// Renders lists the panels rendered, in order.
func (s *Server) Renders() []Render {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Render(nil), s.renders...)
}

// SetRenderSize makes rendered PNGs padded to at least n bytes (tests of
// the evidence's size bound); 0 renders the smallest valid image.
func (s *Server) SetRenderSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renderPad = n
}

const renderPrefix = "/render/d-solo/"

// render answers a panel render. Faults and the token were checked by serve
// and route.
func (s *Server) render(w http.ResponseWriter, req Request, r *http.Request) {
	uid, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, renderPrefix), "/")
	q := r.URL.Query()
	id, err := strconv.ParseInt(q.Get("panelId"), 10, 64)
	if uid == "" || err != nil || id <= 0 {
		s.answer(w, req, http.StatusBadRequest, msg("panelId and a dashboard uid are required"))
		return
	}
	num := func(k string, def int64) (int64, bool) {
		v := q.Get(k)
		if v == "" {
			return def, true
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n >= 0
	}
	from, ok1 := num("from", 0)
	to, ok2 := num("to", 0)
	width, ok3 := num("width", 800)
	height, ok4 := num("height", 400)
	if !ok1 || !ok2 || !ok3 || !ok4 || width == 0 || height == 0 || width > 4096 || height > 4096 {
		s.answer(w, req, http.StatusBadRequest, msg("bad render parameters"))
		return
	}
	s.mu.Lock()
	s.renders = append(s.renders, Render{DashboardUID: uid, PanelID: id, From: from, To: to, Width: int(width), Height: int(height)})
	pad := s.renderPad
	s.mu.Unlock()
	img := PNG(pad)
	req.Status = http.StatusOK
	s.record(req)
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(img)
}

// PNG is a small valid PNG (2×2 pixels), padded with an ancillary text
// chunk to at least minBytes: decoders skip it, so the image stays valid.
func PNG(minBytes int) []byte {
	m := image.NewRGBA(image.Rect(0, 0, 2, 2))
	m.Set(0, 0, color.RGBA{R: 255, A: 255})
	m.Set(1, 1, color.RGBA{G: 255, A: 255})
	var b bytes.Buffer
	_ = png.Encode(&b, m)
	out := b.Bytes()
	if pad := minBytes - len(out) - 12; pad > 0 {
		// Insert a tEXt chunk before IEND (the last 12 bytes).
		iend := out[len(out)-12:]
		head := append([]byte(nil), out[:len(out)-12]...)
		head = append(head, textChunk(pad)...)
		out = append(head, iend...)
	}
	return out
}

func textChunk(n int) []byte {
	data := append([]byte("Comment\x00"), bytes.Repeat([]byte{'x'}, max(n-8, 0))...)
	var c bytes.Buffer
	var l [4]byte
	l[0], l[1], l[2], l[3] = byte(len(data)>>24), byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	c.Write(l[:])
	body := append([]byte("tEXt"), data...)
	c.Write(body)
	sum := crc32.ChecksumIEEE(body)
	c.Write([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	return c.Bytes()
}
