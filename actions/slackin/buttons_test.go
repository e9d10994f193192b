package slackin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

type button struct {
	ID, Value, Text, Style string
	Confirm                *struct {
		Title, Text, Confirm, Deny struct{ Text string }
		Style                      string
	}
}

func buttonsOf(t *testing.T, blocks []slack.Block) (string, []button) {
	t.Helper()
	if len(blocks) != 1 {
		t.Fatalf("%d blocks, want 1", len(blocks))
	}
	raw, err := json.Marshal(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Type     string `json:"type"`
		BlockID  string `json:"block_id"`
		Elements []struct {
			Type     string `json:"type"`
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
			Style    string `json:"style"`
			Text     struct{ Type, Text string }
			Confirm  *struct {
				Title, Text, Confirm, Deny struct{ Text string }
				Style                      string
			} `json:"confirm"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	if b.Type != "actions" {
		t.Fatalf("block type %q", b.Type)
	}
	var out []button
	for _, e := range b.Elements {
		if e.Type != "button" || e.Text.Type != "plain_text" {
			t.Fatalf("element %+v is not a plain_text button", e)
		}
		out = append(out, button{e.ActionID, e.Value, e.Text.Text, e.Style, e.Confirm})
	}
	return b.BlockID, out
}

func TestButtons(t *testing.T) {
	rb := &Rollback{Namespace: "shop", Deployment: "checkout", From: 5, To: 4}
	tests := []struct {
		name    string
		opts    ButtonOptions
		want    []ActionID
		confirm []ActionID
	}{
		{"open", ButtonOptions{}, []ActionID{ActAck, ActSilence1h, ActSilence4h, ActResolve}, []ActionID{ActResolve}},
		{"acknowledged", ButtonOptions{Acknowledged: true}, []ActionID{ActSilence1h, ActSilence4h, ActResolve}, []ActionID{ActResolve}},
		{"silenced", ButtonOptions{Silenced: true}, []ActionID{ActAck, ActUnsilence, ActResolve}, []ActionID{ActResolve}},
		{"with rollback", ButtonOptions{Rollback: rb}, []ActionID{ActAck, ActSilence1h, ActSilence4h, ActResolve, ActRollback}, []ActionID{ActResolve, ActRollback}},
		{"bad rollback target dropped", ButtonOptions{Rollback: &Rollback{Namespace: "Shop!", Deployment: "x", From: 2, To: 1}},
			[]ActionID{ActAck, ActSilence1h, ActSilence4h, ActResolve}, []ActionID{ActResolve}},
		{"over and silenced: Unsilence alone", ButtonOptions{Over: true, Silenced: true, Rollback: rb}, []ActionID{ActUnsilence}, nil},
	}
	const id = "checkout-3f2a9c01b7de"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blockID, bs := buttonsOf(t, Buttons(id, tt.opts))
			if blockID != BlockIDPrefix+id {
				t.Errorf("block_id %q", blockID)
			}
			var got, confirmed []ActionID
			for _, b := range bs {
				got = append(got, ActionID(b.ID))
				if b.Confirm != nil {
					confirmed = append(confirmed, ActionID(b.ID))
					c := b.Confirm
					if c.Title.Text == "" || c.Text.Text == "" || c.Confirm.Text == "" || c.Deny.Text == "" {
						t.Errorf("%s: incomplete confirm %+v", b.ID, c)
					}
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("buttons %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(confirmed, tt.confirm) {
				t.Errorf("confirmed %v, want %v", confirmed, tt.confirm)
			}
		})
	}
}

// An incident that is over, not silenced, has nothing to click.
func TestButtonsOver(t *testing.T) {
	if b := Buttons("checkout-3f2a9c01b7de", ButtonOptions{Over: true, Acknowledged: true}); b != nil {
		t.Errorf("buttons on an incident that is over: %+v", b)
	}
}

// TestButtonsRoundTrip: every button, clicked, decodes back to its action and incident.
func TestButtonsRoundTrip(t *testing.T) {
	ids := []string{"checkout-3f2a9c01b7de", "a", strings.Repeat("x", MaxBlockID-len(BlockIDPrefix))}
	rb := &Rollback{Namespace: strings.Repeat("n", 63), Deployment: strings.Repeat("d", 253), From: 12, To: 11}
	for _, id := range ids {
		blockID, bs := buttonsOf(t, Buttons(id, ButtonOptions{Rollback: rb}))
		for _, b := range bs {
			payload := mutate(t, func(m map[string]any) {
				a := action0(m)
				a["action_id"], a["value"], a["block_id"] = b.ID, b.Value, blockID
			})
			in, err := DecodeInteraction(form(payload))
			if err != nil {
				t.Fatalf("%s on %.20s: %v", b.ID, id, err)
			}
			a := in.Actions[0]
			if string(a.ID) != b.ID || a.Value.Incident != id || a.BlockID != blockID {
				t.Errorf("%s: decoded %+v", b.ID, a)
			}
			if (a.ID == ActRollback) != (a.Value.Rollback != nil) || (a.ID == ActRollback && *a.Value.Rollback != *rb) {
				t.Errorf("%s: rollback %+v", b.ID, a.Value.Rollback)
			}
			if len(b.ID) > MaxActionID || len(b.Value) > MaxValue || utf8.RuneCountInString(b.Text) > MaxButtonText {
				t.Errorf("%s: over Slack's limits", b.ID)
			}
			if c := b.Confirm; c != nil && (utf8.RuneCountInString(c.Title.Text) > 100 || utf8.RuneCountInString(c.Text.Text) > 300 ||
				utf8.RuneCountInString(c.Confirm.Text) > 30 || utf8.RuneCountInString(c.Deny.Text) > 30) {
				t.Errorf("%s: confirm over Slack's limits: %+v", b.ID, c)
			}
		}
	}
}

func TestButtonsInvalidIncident(t *testing.T) {
	for _, id := range []string{"", "has space", "ü", strings.Repeat("x", MaxBlockID)} {
		if got := Buttons(id, ButtonOptions{}); got != nil {
			t.Errorf("Buttons(%.20q) = %d blocks, want none", id, len(got))
		}
	}
}

func TestSilenceFor(t *testing.T) {
	for id, want := range map[ActionID]string{ActSilence1h: "1h0m0s", ActSilence4h: "4h0m0s", ActAck: "0s", ActUnsilence: "0s"} {
		if got := id.SilenceFor().String(); got != want {
			t.Errorf("%s: %s, want %s", id, got, want)
		}
	}
}
