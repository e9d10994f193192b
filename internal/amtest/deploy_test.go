package amtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/amtriage/amtriage/internal/testproc"
)

const deployedReceiver = "../../deploy/alertmanager-receiver.yml"

// The receiver fragment amtriage ships passes the check of the Alertmanager
// installed here (Debian's 0.25: keys of later releases, such as the
// webhook's timeout, are refused).
func TestDeployedReceiverConfigPassesAmtool(t *testing.T) {
	path := filepath.FromSlash(deployedReceiver)
	out, err := CheckConfig(t, path)
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s", path, err, out)
	}
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config %s said:\n%s", path, out)
	}
}

// ... and the check of a current release's amtool (.ci/run builds it and
// names it in AMTRIAGE_AMTOOL_CURRENT), which refuses keys 0.25 accepted
// and later removed.
func TestDeployedReceiverConfigPassesCurrentAmtool(t *testing.T) {
	amtool := os.Getenv("AMTRIAGE_AMTOOL_CURRENT")
	if amtool == "" {
		testproc.Missing(t,
			"AMTRIAGE_AMTOOL_CURRENT is not set: .ci/run must build a current amtool",
			"no current amtool: go install github.com/prometheus/alertmanager/cmd/amtool@v0.34.2 and set AMTRIAGE_AMTOOL_CURRENT to it (.ci/run does)")
		return
	}
	path := filepath.FromSlash(deployedReceiver)
	out, err := exec.Command(amtool, "check-config", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("%s check-config %s: %v\n%s", amtool, path, err, out)
	}
}

// The fragment routes the heartbeat to amtriage, resent often enough for
// the dead man's switch (every minute, well within missing_after), as the
// README says; other alerts go to amtriage too.
func TestDeployedReceiverConfigRoutesTheHeartbeat(t *testing.T) {
	type route struct {
		Receiver       string   `yaml:"receiver"`
		Matchers       []string `yaml:"matchers"`
		RepeatInterval string   `yaml:"repeat_interval"`
		Routes         []route  `yaml:"routes"`
	}
	var cfg struct {
		Route route `yaml:"route"`
	}
	raw, err := os.ReadFile(filepath.FromSlash(deployedReceiver))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Route.Receiver != "amtriage" {
		t.Errorf("the root route goes to %q, want amtriage", cfg.Route.Receiver)
	}
	var heartbeat *route
	for i, r := range cfg.Route.Routes {
		for _, m := range r.Matchers {
			if strings.ReplaceAll(m, " ", "") == `alertname="Watchdog"` {
				heartbeat = &cfg.Route.Routes[i]
			}
		}
	}
	if heartbeat == nil {
		t.Fatalf("no child route matches alertname=\"Watchdog\": %+v", cfg.Route.Routes)
	}
	if heartbeat.Receiver != "amtriage" {
		t.Errorf("the heartbeat goes to %q, want amtriage", heartbeat.Receiver)
	}
	if d, err := time.ParseDuration(heartbeat.RepeatInterval); err != nil || d > time.Minute {
		t.Errorf("the heartbeat's repeat_interval is %q, want at most 1m (missing_after is 15m)", heartbeat.RepeatInterval)
	}
}
