package notify

import (
	"context"
	"testing"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

type plainReceiver struct{}

func (plainReceiver) Name() string                                          { return "plain" }
func (plainReceiver) Notify(context.Context, *incident.Event) (bool, error) { return false, nil }

type silencer struct{ plainReceiver }

func (silencer) Takes(k incident.EventKind) bool { return k == incident.SilenceRequested }

// Action events are queued only for the receivers that take them; the
// wrappers say what the receiver they wrap takes.
func TestTakes(t *testing.T) {
	all := func(string, severity.Level) bool { return true }
	cases := []struct {
		name string
		n    Notifier
		kind incident.EventKind
		want bool
	}{
		{"a plain receiver takes incident events", plainReceiver{}, incident.Opened, true},
		{"and what responders did", plainReceiver{}, incident.Silenced, true},
		{"not work for the action receivers", plainReceiver{}, incident.SilenceRequested, false},
		{"nor refusals", plainReceiver{}, incident.ActionRefused, false},
		{"a filter says", silencer{}, incident.SilenceRequested, true},
		{"and only it", silencer{}, incident.Opened, false},
		{"through Routed", &Routed{Notifier: silencer{}, Sends: all}, incident.SilenceRequested, true},
		{"through Routed, plain", &Routed{Notifier: plainReceiver{}, Sends: all}, incident.RollbackRequested, false},
		{"through HeldOutsideHours", &HeldOutsideHours{Notifier: &Routed{Notifier: silencer{}, Sends: all}}, incident.Opened, false},
	}
	for _, c := range cases {
		if got := Takes(c.n, c.kind); got != c.want {
			t.Errorf("%s: Takes(%s) = %v, want %v", c.name, c.kind, got, c.want)
		}
	}
}
