package testproc

import (
	"strings"
	"testing"
)

// recordingTB records how Missing ends a test instead of ending this one.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()             {}
func (r *recordingTB) Fatal(a ...any)      { r.fatal = a[0].(string) }
func (r *recordingTB) Skip(a ...any)       { r.skip = a[0].(string) }
func (r *recordingTB) Logf(string, ...any) {}

func TestMissingFailsOnlyInCI(t *testing.T) {
	for _, tt := range []struct {
		ci                  string
		wantFatal, wantSkip string
	}{
		{"true", "CI=true but x is not on PATH: .ci/run installs it", ""},
		{"1", "CI=true but x is not on PATH: .ci/run installs it", ""},
		{"", "", "x not installed: apt-get install x"},
		{"false", "", "x not installed: apt-get install x"},
	} {
		t.Setenv("CI", tt.ci)
		r := &recordingTB{TB: t}
		Missing(r, "x is not on PATH: .ci/run installs it", "x not installed: apt-get install x")
		if r.fatal != tt.wantFatal || r.skip != tt.wantSkip {
			t.Errorf("CI=%q: fatal %q skip %q, want %q %q", tt.ci, r.fatal, r.skip, tt.wantFatal, tt.wantSkip)
		}
	}
}

func TestStartReportsAnEarlyExitWithItsLog(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(t, Spec{Name: "doomed", Bin: "/bin/sh", Dir: dir, ReadyPath: "/-/ready",
		Args: func(addr, url, dataDir string) []string {
			return []string{"-c", "echo listening on " + addr + " failed: bad flag; exit 3"}
		}})
	if err == nil || !strings.Contains(err.Error(), "process exited early") || !strings.Contains(err.Error(), "failed: bad flag") {
		t.Fatalf("Start = %v, want an early exit quoting the log", err)
	}
}
