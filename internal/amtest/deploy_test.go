package amtest

import (
	"path/filepath"
	"strings"
	"testing"
)

// The receiver fragment amtriage ships passes the check of the Alertmanager
// installed here (Debian's 0.25: keys of later releases, such as the
// webhook's timeout, are refused), and has the heartbeat route.
func TestDeployedReceiverConfigPassesAmtool(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "alertmanager-receiver.yml")
	out, err := CheckConfig(t, path)
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s", path, err, out)
	}
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config %s said:\n%s", path, out)
	}
}
