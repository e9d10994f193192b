// Package browsertest drives a real headless Chromium for tests of the web
// pages, through chromedp: it finds the binary (skip locally, fail under
// CI=true when it is missing, as internal/testproc has it), starts it with a
// temporary profile, bounds every step with a timeout, and records what a
// user would see in the DevTools console (errors, uncaught exceptions, CSP
// violations) so that a test can assert there were none.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/amtriage/amtriage/internal/testproc"
)

const (
	// startTimeout bounds the browser's start (process, pipe, first tab):
	// a cold start on a loaded 2-core CI machine takes a few seconds.
	startTimeout = 20 * time.Second
	// StepTimeout bounds each action (a navigation, a wait, a click): a
	// missing element fails the test after it instead of hanging.
	StepTimeout = 10 * time.Second
	// settleDelay lets events queued by the page (a securitypolicyviolation
	// is dispatched as a task after the blocked load) reach the collector
	// before Problems reads it.
	settleDelay = 100 * time.Millisecond

	// EnvChromium names a browser binary to use instead of the search.
	EnvChromium = "AMTRIAGE_CHROMIUM"

	// cspWorld is the isolated JavaScript world the CSP listener runs in:
	// the page's own scripts neither see nor disturb it, and it is not
	// subject to the page's CSP.
	cspWorld   = "amtriage-browsertest"
	cspBinding = "__amtriageCSPViolation"
)

// candidates are the names the browser goes by: Debian's package first
// (what .ci/run installs), then the usual others.
var candidates = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless_shell"}

// Find returns the path of the Chromium to run: $AMTRIAGE_CHROMIUM if set,
// otherwise the first of the usual names on PATH.
func Find() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvChromium, p, err)
		}
		return path, nil
	}
	for _, name := range candidates {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("none of %s on PATH", strings.Join(candidates, ", "))
}

// Problem is one thing the DevTools console would show in red.
type Problem struct {
	Kind string // "console" (console.error), "exception", "log" (browser log, e.g. a failed load), "csp"
	Text string
	URL  string // where, when the browser says
}

func (p Problem) String() string {
	if p.URL == "" {
		return p.Kind + ": " + p.Text
	}
	return p.Kind + ": " + p.Text + " (" + p.URL + ")"
}

// Response is what the browser received for a page it navigated to.
type Response struct {
	URL    string
	Status int
	Header http.Header
}

// Browser is one headless Chromium with one tab, owned by one test; With
// lends it to a subtest.
type Browser struct {
	t testing.TB // where failures go
	*tab
}

// tab is what the Browsers of a test and its subtests share.
type tab struct {
	ctx context.Context // the tab's chromedp context

	mu       sync.Mutex
	problems []Problem
	lastDoc  *network.Response // the last document response, for a load the browser then refused to show
}

// With returns the same browser reporting to t (a subtest): a test's
// failure must be raised from its own goroutine.
func (b *Browser) With(t testing.TB) *Browser { return &Browser{t: t, tab: b.tab} }

// Start runs headless Chromium with a fresh profile and one tab, and stops
// it in t.Cleanup. Without a browser the test is skipped locally and fails
// under CI=true.
func Start(t testing.TB) *Browser {
	t.Helper()
	bin, err := Find()
	if err != nil {
		testproc.Missing(t, "no Chromium for the browser tests ("+err.Error()+"); .ci/run installs Debian's chromium",
			"skipping the browser test: no Chromium ("+err.Error()+"); apt-get install chromium")
		return nil
	}
	// The profile is not t.TempDir: Chromium's helpers can still write
	// into it for a moment after the browser exits, and TempDir's removal
	// would then fail the test.
	profile, err := os.MkdirTemp("", "amtriage-chromium-")
	if err != nil {
		t.Fatalf("browser profile dir: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile),
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.WSURLReadTimeout(startTimeout),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run its sandbox as root (CI runs as root).
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{t: t, tab: &tab{}}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.collect),
		chromedp.WithErrorf(func(format string, args ...any) { t.Logf("chromedp: "+format, args...) }))
	b.ctx = ctx
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		removeAll(t, profile)
	})

	// The first Run starts the browser and lives as long as its context,
	// so it gets no timeout of its own: a timer cancels it instead.
	timer := time.AfterFunc(startTimeout, cancelTab)
	err = chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return b.installCSPListener(ctx)
	}))
	if !timer.Stop() {
		err = errors.Join(err, fmt.Errorf("not started within %v", startTimeout))
	}
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	return b
}

// removeAll removes the profile, retrying while Chromium's last helper
// processes finish writing into it.
func removeAll(t testing.TB, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("remove browser profile %s: %v", dir, err)
}

// installCSPListener reports every securitypolicyviolation event of every
// document the tab loads, through a binding, from an isolated world: the
// event is the only complete record of what the page's CSP blocked.
func (b *Browser) installCSPListener(ctx context.Context) error {
	if _, err := chromedp.Call(ctx, runtime.AddBinding, runtime.AddBindingParams{Name: cspBinding, ExecutionContextName: cspWorld}); err != nil {
		return fmt.Errorf("add the CSP binding: %w", err)
	}
	src := `document.addEventListener("securitypolicyviolation", (e) => {
  ` + cspBinding + `(JSON.stringify({directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI, url: e.documentURI, sample: e.sample}));
}, true);`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src, WorldName: cspWorld}); err != nil {
		return fmt.Errorf("add the CSP listener: %w", err)
	}
	return nil
}

// collect runs on chromedp's reader goroutine for every event of the tab:
// it must return fast and never call back into the browser.
func (b *tab) collect(ev any) {
	var p Problem
	switch ev := ev.(type) {
	case *network.EventResponseReceived:
		if ev.Type == network.ResourceTypeDocument {
			b.mu.Lock()
			b.lastDoc = ev.Response
			b.mu.Unlock()
		}
		return
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			parts = append(parts, remoteText(a))
		}
		p = Problem{Kind: "console", Text: strings.Join(parts, " ")}
		if ev.StackTrace != nil && len(ev.StackTrace.CallFrames) > 0 {
			p.URL = ev.StackTrace.CallFrames[0].URL
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d == nil {
			return
		}
		p = Problem{Kind: "exception", Text: d.Text, URL: d.URL}
		if d.Exception != nil && d.Exception.Description != "" {
			p.Text += " " + d.Exception.Description
		}
	case *log.EventEntryAdded:
		if ev.Entry == nil || ev.Entry.Level != log.EntryLevelError {
			return
		}
		p = Problem{Kind: "log", Text: string(ev.Entry.Source) + ": " + ev.Entry.Text, URL: ev.Entry.URL}
	case *runtime.EventBindingCalled:
		if ev.Name != cspBinding {
			return
		}
		var v struct{ Directive, Blocked, URL, Sample string }
		if err := json.Unmarshal([]byte(ev.Payload), &v); err != nil {
			p = Problem{Kind: "csp", Text: ev.Payload}
			break
		}
		p = Problem{Kind: "csp", Text: fmt.Sprintf("%s blocked %q %s", v.Directive, v.Blocked, v.Sample), URL: v.URL}
	default:
		return
	}
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

// remoteText is how the console shows one argument.
func remoteText(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Type)
}

// step runs one action with StepTimeout and fails the test on error.
func step[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := run(b, a)
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// run runs one action with StepTimeout; the tab's context outlives it.
func run[T any](b *Browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// Navigate loads url and waits for its load event. It returns the response
// whatever its status (a test may expect a 401 or a 404).
func (b *Browser) Navigate(url string) Response {
	b.t.Helper()
	b.mu.Lock()
	b.lastDoc = nil
	b.mu.Unlock()
	resp, err := run(b, chromedp.NavigateResponse(url))
	if err != nil {
		// Headless Chromium fails the load of a 401 that asks for basic
		// auth (net::ERR_INVALID_AUTH_CREDENTIALS: it has no dialog to
		// ask with), yet the response arrived: that is what a test of
		// the auth wants to see.
		b.mu.Lock()
		doc := b.lastDoc
		b.mu.Unlock()
		if doc == nil || doc.URL != url || doc.Status < 400 {
			b.t.Fatalf("browser: navigate to %s: %v", url, err)
		}
		resp = doc
	}
	return toResponse(resp)
}

// ClickNavigate clicks the first element matching the CSS selector sel
// (a link) and waits for the page it opens.
func (b *Browser) ClickNavigate(sel string) Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("browser: click %s and wait for the page: %v", sel, err)
	}
	return toResponse(resp)
}

// Click clicks the first visible element matching the CSS selector sel.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	step(b, "click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// WaitVisible waits until an element matching the CSS selector sel is
// visible (rendered, with a size), failing the test after StepTimeout.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	step(b, "wait for "+sel+" to be visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Text is the rendered text (innerText) of the first element matching sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return step(b, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// InnerHTML is the markup inside the first element matching sel.
func (b *Browser) InnerHTML(sel string) string {
	b.t.Helper()
	return step(b, "inner HTML of "+sel, chromedp.InnerHTML(chromedp.CSS(sel)))
}

// HTML is the whole document as the browser has it now.
func (b *Browser) HTML() string {
	b.t.Helper()
	return step(b, "document HTML", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
}

// Location is the URL of the page shown.
func (b *Browser) Location() string {
	b.t.Helper()
	return step(b, "location", chromedp.Location())
}

// Count is how many elements match the CSS selector sel now, without
// waiting: for asserting that something is absent.
func (b *Browser) Count(sel string) int {
	b.t.Helper()
	q, _ := json.Marshal(sel) // a JSON string is a JavaScript string literal
	return step(b, "count "+sel, chromedp.Evaluate[int](`document.querySelectorAll(`+string(q)+`).length`))
}

// Attrs are the attributes of every element matching sel, in document
// order, without waiting.
func (b *Browser) Attrs(sel string) []map[string]string {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return step(b, "attributes of "+sel, chromedp.Evaluate[[]map[string]string](
		`Array.from(document.querySelectorAll(`+string(q)+`), (e) => Object.fromEntries(Array.from(e.attributes, (a) => [a.name, a.value])))`))
}

// Viewport sets the window's size in CSS pixels (a phone: 375×800), as a
// mobile device with touch; Navigate again for the page to lay out anew.
func (b *Browser) Viewport(width, height int64) {
	b.t.Helper()
	step(b, "viewport", chromedp.EmulateViewport(width, height, chromedp.EmulateMobile))
}

// Int evaluates a JavaScript expression of an integer (a layout width).
func (b *Browser) Int(expr string) int {
	b.t.Helper()
	return step(b, "evaluate "+expr, chromedp.Evaluate[int](expr))
}

// SetHeaders sends these headers with every later request of the tab (an
// Authorization header, say); nil or empty stops sending them.
func (b *Browser) SetHeaders(h map[string]string) {
	b.t.Helper()
	hs := network.Headers{}
	for k, v := range h {
		hs[k] = v
	}
	step(b, "set extra HTTP headers", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: hs})
		return err
	}))
}

// EnvArtifacts, when set, names a directory where screenshots are also
// kept after the test (its temp dir is removed with it).
const EnvArtifacts = "AMTRIAGE_TEST_ARTIFACTS"

// Screenshot captures the whole page as name.png under the test's temp dir,
// fails the test if the image is blank (see CheckNonBlank), and returns its
// path: the artifact a failing run leaves to look at.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png := step(b, "screenshot "+name, chromedp.FullScreenshot(100))
	path := filepath.Join(b.t.TempDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("write screenshot: %v", err)
	}
	if err := CheckNonBlank(png); err != nil {
		b.t.Errorf("screenshot %s: %v", path, err)
	}
	if dir := os.Getenv(EnvArtifacts); dir != "" {
		// The temp dir goes with the test: a copy outlives it.
		keep := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name())+"-"+name+".png")
		if err := os.MkdirAll(dir, 0o755); err != nil || os.WriteFile(keep, png, 0o644) != nil {
			b.t.Errorf("keeping screenshot %s in %s (%s): failed", name, dir, EnvArtifacts)
		}
	}
	b.t.Logf("screenshot %s (%d bytes)", path, len(png))
	return path
}

// Problems returns what the console showed in red since Start or the last
// Problems call, and forgets it. It first lets the page's pending events
// (a CSP violation is reported from a queued task) reach the collector.
func (b *Browser) Problems() []Problem {
	b.t.Helper()
	// A round trip after the delay: the listener sees events in the order
	// the browser sends them, so every event sent before the answer is in.
	step(b, "settle", chromedp.Evaluate[bool](
		fmt.Sprintf(`new Promise((r) => setTimeout(() => r(true), %d))`, settleDelay.Milliseconds()), chromedp.EvalAwaitPromise))
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// NoProblems fails the test with each console error, uncaught exception and
// CSP violation seen since the last check, naming the page (what).
func (b *Browser) NoProblems(what string) {
	b.t.Helper()
	for _, p := range b.Problems() {
		b.t.Errorf("%s: %s", what, p)
	}
}

func toResponse(r *network.Response) Response {
	if r == nil {
		return Response{}
	}
	h := http.Header{}
	for k, v := range r.Headers {
		// Chromium joins repeated headers with newlines.
		for _, line := range strings.Split(fmt.Sprint(v), "\n") {
			h.Add(k, line)
		}
	}
	return Response{URL: r.URL, Status: int(r.Status), Header: h}
}
