package triage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

// Message is Alertmanager's webhook body (version "4"): template.Data plus the
// fields Alertmanager's own webhook.Message adds. Unknown fields are ignored so
// newer Alertmanagers (notification_reason, routeLabels, …) are accepted.
type Message struct {
	template.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// InputError is a payload that can never be accepted: the HTTP layer answers
// 400 and Alertmanager does not retry it.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// DecodeMessage parses and validates one webhook body. Every error it returns
// is an *InputError describing what is wrong, naming the field.
func DecodeMessage(body []byte) (*Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return nil, describeJSONError(err)
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return nil, inputErrorf("malformed JSON: trailing data after the payload object")
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var perr *time.ParseError
	switch {
	case errors.As(err, &syn):
		return inputErrorf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		// Field is the Go path ("Data.alerts.labels" through the embedded
		// template.Data); Alertmanager's log should see JSON names and types.
		field := strings.TrimPrefix(typ.Field, "Data.")
		if field == "" || field == "Data" {
			field = "payload"
		}
		return inputErrorf("field %s: expected %s, got JSON %s", field, jsonType(typ.Type), typ.Value)
	case errors.As(err, &perr):
		return inputErrorf("unparseable timestamp %q: want RFC 3339", perr.Value)
	case errors.Is(err, io.EOF):
		return inputErrorf("empty body: want an Alertmanager webhook payload")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return inputErrorf("malformed JSON: unexpected end of input")
	default:
		// time.Time's UnmarshalJSON reports some problems without a ParseError.
		if strings.Contains(err.Error(), "parsing time") || strings.Contains(err.Error(), "Time.UnmarshalJSON") {
			return inputErrorf("unparseable timestamp: %v", err)
		}
		return inputErrorf("malformed JSON: %v", err)
	}
}

// jsonType names a Go type the way the JSON it decodes from is spelled.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Map, reflect.Struct:
		return "JSON object"
	case reflect.Slice, reflect.Array:
		return "JSON array"
	case reflect.String:
		return "JSON string"
	case reflect.Bool:
		return "JSON boolean"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "non-negative integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "JSON number"
	}
	return t.String()
}

func (m *Message) validate() error {
	if m.Version != "4" {
		if m.Version == "" {
			return inputErrorf(`field version: missing; want "4" (Alertmanager webhook)`)
		}
		return inputErrorf(`field version: unsupported version %q; want "4"`, m.Version)
	}
	if m.Status != "" && m.Status != string(model.AlertFiring) && m.Status != string(model.AlertResolved) {
		return inputErrorf(`field status: %q is neither "firing" nor "resolved"`, m.Status)
	}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		switch a.Status {
		case string(model.AlertFiring), string(model.AlertResolved):
		default:
			return inputErrorf(`field alerts[%d].status: %q is neither "firing" nor "resolved"`, i, a.Status)
		}
		if a.StartsAt.IsZero() {
			return inputErrorf("field alerts[%d].startsAt: missing; it identifies the alert occurrence", i)
		}
		if a.Fingerprint == "" {
			// Alertmanager always sends it; derive it the same way for other senders.
			a.Fingerprint = fingerprint(a.Labels)
		}
	}
	return nil
}

func fingerprint(kv template.KV) string {
	ls := make(model.LabelSet, len(kv))
	for k, v := range kv {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// OccurrenceKey identifies one occurrence of an alert: the fingerprint hashes
// only the labels, so the same labels firing again later is a new occurrence.
func OccurrenceKey(a *template.Alert) string {
	return a.Fingerprint + "@" + a.StartsAt.UTC().Format(time.RFC3339Nano)
}
