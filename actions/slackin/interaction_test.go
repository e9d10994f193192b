package slackin

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func form(payload string) []byte { return []byte("payload=" + url.QueryEscape(payload)) }

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeInteractionFixtures(t *testing.T) {
	tests := []struct {
		file    string
		want    Interaction
		wantErr error
	}{
		{file: "block_actions_ack.json", want: Interaction{
			Type: TypeBlockActions, TeamID: "T0123TEAM", UserTeamID: "T0123TEAM", TeamDomain: "example",
			UserID: "U0123ABCD", UserName: "jane.doe", ChannelID: "C0123ALRT", ChannelName: "alerts",
			MessageTS:   "1700000000.000100",
			ResponseURL: "https://hooks.slack.com/actions/T0123TEAM/6163219785/oVMQvzvx3rU3QyfbWDqLyFjS",
			TriggerID:   "12466734323.1395872398.7ed1e0fd3a0ad1a5d1bf25d2c72c8b0d",
			Actions: []Action{{ID: ActAck, BlockID: "amtriage_actions:checkout-3f2a9c01b7de",
				Value: Value{Incident: "checkout-3f2a9c01b7de"}, RawValue: `{"incident":"checkout-3f2a9c01b7de"}`,
				ActionTS: "1700000012.345678"}},
		}},
		{file: "block_actions_rollback_thread.json", want: Interaction{
			Type: TypeBlockActions, TeamID: "T0123TEAM", UserTeamID: "T0123TEAM", TeamDomain: "example",
			UserID: "W0456EEEE", UserName: "sam", ChannelID: "C0999SEV1", ChannelName: "inc-checkout",
			MessageTS: "1700000100.000200", ThreadTS: "1700000000.000100",
			ResponseURL: "https://hooks.slack.com/actions/T0123TEAM/6163219786/abc",
			TriggerID:   "12466734323.1395872398.aaaa",
			Actions: []Action{{ID: ActRollback, BlockID: "amtriage_actions:checkout-3f2a9c01b7de",
				Value:    Value{Incident: "checkout-3f2a9c01b7de", Rollback: &Rollback{Namespace: "shop", Deployment: "checkout", From: 5, To: 4}},
				RawValue: `{"incident":"checkout-3f2a9c01b7de","rollback":{"ns":"shop","deployment":"checkout","from":5,"to":4}}`,
				ActionTS: "1700000123.000001"}},
		}},
		{file: "view_submission.json", wantErr: ErrIgnored},
		{file: "interactive_message.json", wantErr: ErrIgnored},
		{file: "block_actions_unknown_action.json", wantErr: ErrUnknownAction},
		{file: "block_actions_static_select.json", wantErr: ErrUnknownAction},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := DecodeInteraction(form(fixture(t, tt.file)))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("DecodeInteraction: %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeInteraction: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// mutate returns the ack fixture with one change applied to its JSON.
func mutate(t *testing.T, f func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(fixture(t, "block_actions_ack.json")), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, _ := json.Marshal(m)
	return string(b)
}

func action0(m map[string]any) map[string]any { return m["actions"].([]any)[0].(map[string]any) }

func TestDecodeInteractionRefusals(t *testing.T) {
	tests := []struct {
		name    string
		body    func(t *testing.T) []byte
		wantErr error
	}{
		{"not a form", func(*testing.T) []byte { return []byte("%zz") }, ErrNotPayload},
		{"no payload field", func(*testing.T) []byte { return []byte("token=x") }, ErrNotPayload},
		{"two payload fields", func(t *testing.T) []byte {
			return append(form(fixture(t, "block_actions_ack.json")), []byte("&payload=x")...)
		}, ErrNotPayload},
		{"raw JSON body", func(t *testing.T) []byte { return []byte(fixture(t, "block_actions_ack.json")) }, ErrNotPayload},
		{"payload not JSON", func(*testing.T) []byte { return form("{") }, ErrNotPayload},
		{"payload without type", func(*testing.T) []byte { return form(`{"actions":[]}`) }, ErrNotPayload},
		{"no user", func(t *testing.T) []byte { return form(mutate(t, func(m map[string]any) { delete(m, "user") })) }, ErrNotPayload},
		{"no message ts", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) { delete(m, "container"); delete(m, "message") }))
		}, ErrNotPayload},
		{"no actions", func(t *testing.T) []byte { return form(mutate(t, func(m map[string]any) { m["actions"] = []any{} })) }, ErrNotPayload},
		{"no action_ts", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) { delete(action0(m), "action_ts") }))
		}, ErrNotPayload},
		{"huge user id", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) { m["user"].(map[string]any)["id"] = strings.Repeat("U", 300) }))
		}, ErrNotPayload},
		{"value not JSON", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) { action0(m)["value"] = "checkout-3f2a9c01b7de" }))
		}, ErrUnknownAction},
		{"incident id with a space", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) { action0(m)["value"] = `{"incident":"a b"}` }))
		}, ErrUnknownAction},
		{"incident id too long", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) { action0(m)["value"] = `{"incident":"` + strings.Repeat("a", 256) + `"}` }))
		}, ErrUnknownAction},
		{"rollback target on ack", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) {
				action0(m)["value"] = `{"incident":"x","rollback":{"ns":"a","deployment":"b","from":2,"to":1}}`
			}))
		}, ErrUnknownAction},
		{"rollback without target", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) { action0(m)["action_id"] = "rollback" }))
		}, ErrUnknownAction},
		{"rollback to the same revision", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) {
				action0(m)["action_id"] = "rollback"
				action0(m)["value"] = `{"incident":"x","rollback":{"ns":"a","deployment":"b","from":2,"to":2}}`
			}))
		}, ErrUnknownAction},
		{"rollback to a bad name", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) {
				action0(m)["action_id"] = "rollback"
				action0(m)["value"] = `{"incident":"x","rollback":{"ns":"a","deployment":"B; rm","from":2,"to":1}}`
			}))
		}, ErrUnknownAction},
		{"a second, unknown action", func(t *testing.T) []byte {
			return form(mutate(t, func(m map[string]any) {
				m["actions"] = append(m["actions"].([]any), map[string]any{"type": "button", "action_id": "other", "action_ts": "1.2"})
			}))
		}, ErrUnknownAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := DecodeInteraction(tt.body(t))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeInteraction: %v (%+v), want %v", err, in, tt.wantErr)
			}
		})
	}
}

func TestDecodeInteractionFallbacks(t *testing.T) {
	// Without container, channel and team, the ids come from message, container and user.
	p := mutate(t, func(m map[string]any) {
		m["container"] = map[string]any{"type": "message", "channel_id": "C0FROMCONT"}
		delete(m, "channel")
		delete(m, "team")
	})
	in, err := DecodeInteraction(form(p))
	if err != nil {
		t.Fatal(err)
	}
	if in.ChannelID != "C0FROMCONT" || in.MessageTS != "1700000000.000100" || in.TeamID != "T0123TEAM" {
		t.Errorf("fallbacks: channel %q ts %q team %q", in.ChannelID, in.MessageTS, in.TeamID)
	}
}

func TestKeys(t *testing.T) {
	in, err := DecodeInteraction(form(fixture(t, "block_actions_ack.json")))
	if err != nil {
		t.Fatal(err)
	}
	a := in.Actions[0]
	again, _ := DecodeInteraction(form(fixture(t, "block_actions_ack.json")))
	if in.Key(a) != again.Key(again.Actions[0]) {
		t.Error("a redelivery of the same click has another key")
	}
	second := a
	second.ActionTS = "1700000013.000001"
	if in.Key(a) == in.Key(second) {
		t.Error("a second click has the same key")
	}
	other := in
	other.UserID = "U0OTHER"
	if in.Key(a) == other.Key(a) {
		t.Error("another user's click has the same key")
	}
	s1 := Action{ID: ActSilence1h, Value: Value{Incident: "i"}}
	s4 := Action{ID: ActSilence4h, Value: Value{Incident: "i"}}
	if s1.IntentKey() != s4.IntentKey() || s1.IntentKey() == (Action{ID: ActAck, Value: Value{Incident: "i"}}).IntentKey() {
		t.Errorf("intent keys: %q %q", s1.IntentKey(), s4.IntentKey())
	}
}
