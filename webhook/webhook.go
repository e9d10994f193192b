// Package webhook reads Alertmanager's webhook notifications (version "4"):
// decoding, the limits of what one may carry, and the alerts read in parts.
package webhook

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

	"github.com/amtriage/amtriage/internal/clip"
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

// Limits of what one notification may carry. Everything an alert brings is
// stored (keys of the store, JSON records, outbox events), so what the store
// or the encoder cannot hold is refused at intake with a 400 naming the
// field, instead of being acknowledged and then failing every commit.
const (
	MaxFingerprintBytes     = 128 // Alertmanager sends 16 hex digits
	MaxLabels               = 256 // labels, and annotations, per alert
	MaxLabelNameBytes       = 1 << 10
	MaxLabelValueBytes      = 16 << 10
	MaxAnnotationValueBytes = 64 << 10
	MaxURLBytes             = 8 << 10 // generatorURL, externalURL
	MaxGroupKeyBytes        = 16 << 10
	MaxReceiverBytes        = 1 << 10
	// MaxAlertBytes bounds an alert's labels and annotations together: each
	// alert is held in memory while it fires and copied into its record and
	// its events, so one alert of 256 values of 64 KiB (16 MiB) would cost
	// hundreds of MiB.
	MaxAlertBytes = 256 << 10
)

// InputError is a payload that can never be accepted: the HTTP layer answers
// 400 and Alertmanager does not retry it.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// Notification is a webhook body whose header is decoded and validated and
// whose alerts, all validated once, are decoded again on demand a part at a
// time (Alerts): a storm's alerts never need to be in memory all at once.
type Notification struct {
	Message     // without its alerts
	Count   int // alerts in the body
	Firing  int // of which firing
	raw     []byte
}

// wire is the body as it is decoded: the alerts array is kept raw, so the
// header can be read without the alerts, which come after it in
// Alertmanager's field order.
type wire struct {
	Receiver          string      `json:"receiver"`
	Status            string      `json:"status"`
	Alerts            rawAlerts   `json:"alerts"`
	GroupLabels       template.KV `json:"groupLabels"`
	CommonLabels      template.KV `json:"commonLabels"`
	CommonAnnotations template.KV `json:"commonAnnotations"`
	ExternalURL       string      `json:"externalURL"`
	Version           string      `json:"version"`
	GroupKey          string      `json:"groupKey"`
	TruncatedAlerts   uint64      `json:"truncatedAlerts"`
	// Newer Alertmanagers' fields, kept for what template.Data has of them.
	NotificationReason string      `json:"notification_reason"`
	RouteLabels        template.KV `json:"routeLabels"`
}

// rawAlerts is the alerts array as it appears in the body. json.Unmarshal
// hands UnmarshalJSON a slice of its own input, so this is not a copy.
type rawAlerts []byte

func (r *rawAlerts) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// ParseNotification validates one webhook body, every alert included, and
// returns its header and alert count. Every error it returns is an
// *InputError describing what is wrong, naming the field. It holds one
// alert in memory at a time, whatever the body's size.
func ParseNotification(body []byte) (*Notification, error) {
	n, err := ParseHeader(body)
	if err != nil {
		return nil, err
	}
	r := n.Alerts()
	var a template.Alert
	for {
		ok, err := r.next(&a)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if a.Status == string(model.AlertFiring) {
			n.Firing++
		}
		a = template.Alert{}
	}
	n.Count = r.read
	return n, nil
}

// DecodeMessage parses and validates one webhook body, alerts included. Every
// error it returns is an *InputError describing what is wrong, naming the field.
func DecodeMessage(body []byte) (*Message, error) {
	n, err := ParseHeader(body)
	if err != nil {
		return nil, err
	}
	m := n.Message
	if m.Alerts, err = n.Alerts().Next(-1); err != nil {
		return nil, err
	}
	n.Count = len(m.Alerts)
	return &m, nil
}

// ParseHeader reads a body's fields but its alerts, which stay to be read
// in parts (Notification.Alerts): a large notification is never decoded whole.
func ParseHeader(body []byte) (*Notification, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, inputErrorf("empty body: want an Alertmanager webhook payload")
	}
	var w wire
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, describeJSONError(err, "")
	}
	n := &Notification{raw: w.Alerts}
	n.Message = Message{
		Data: template.Data{
			Receiver: w.Receiver, Status: w.Status, GroupLabels: w.GroupLabels,
			CommonLabels: w.CommonLabels, CommonAnnotations: w.CommonAnnotations, ExternalURL: w.ExternalURL,
			NotificationReason: w.NotificationReason, RouteLabels: w.RouteLabels,
		},
		Version: w.Version, GroupKey: w.GroupKey, TruncatedAlerts: w.TruncatedAlerts,
	}
	if err := n.Message.validate(); err != nil {
		return nil, err
	}
	return n, nil
}

// AlertReader decodes a notification's alerts in order, validating each.
// The alerts array was checked as JSON with the body, so finding where each
// alert ends is a plain scan; each is then decoded on its own.
type AlertReader struct {
	raw  []byte // the alerts array
	pos  int    // where the next element starts
	read int    // alerts decoded so far
	done bool
}

// Alerts starts reading the notification's alerts from the first.
func (n *Notification) Alerts() *AlertReader {
	raw := bytes.TrimSpace(n.raw)
	if len(raw) == 0 || string(raw) == "null" {
		return &AlertReader{done: true}
	}
	return &AlertReader{raw: raw}
}

// CountAlerts counts the notification's alerts without decoding them.
func (n *Notification) CountAlerts() int {
	r := n.Alerts()
	if r.done || r.raw[0] != '[' {
		return 0
	}
	r.pos = 1
	count := 0
	for {
		if _, ok := r.element(); !ok {
			return count
		}
		count++
	}
}

// Next returns up to n further alerts (n < 0: all of them); none once
// every alert has been read.
func (r *AlertReader) Next(n int) ([]template.Alert, error) {
	var out []template.Alert
	for n < 0 || len(out) < n {
		out = append(out, template.Alert{})
		ok, err := r.next(&out[len(out)-1])
		if err != nil {
			return nil, err
		}
		if !ok {
			out = out[:len(out)-1]
			break
		}
	}
	return out, nil
}

// Skip reads past k alerts, for resuming a notification processed in part.
func (r *AlertReader) Skip(k int) error {
	var a template.Alert
	for range k {
		if ok, err := r.next(&a); err != nil || !ok {
			return err
		}
		a = template.Alert{}
	}
	return nil
}

// Read is how many alerts have been decoded so far.
func (r *AlertReader) Read() int { return r.read }

func (r *AlertReader) next(a *template.Alert) (bool, error) {
	if r.done {
		return false, nil
	}
	if r.read == 0 && r.pos == 0 {
		if r.raw[0] != '[' {
			return false, inputErrorf("field alerts: expected JSON array, got %s", jsonKind(r.raw[0]))
		}
		r.pos = 1
	}
	elem, ok := r.element()
	if !ok {
		r.done = true
		return false, nil
	}
	i := r.read
	if err := json.Unmarshal(elem, a); err != nil {
		return false, describeJSONError(err, fmt.Sprintf("alerts[%d]", i)+timeField(elem))
	}
	if err := validateAlert(i, a); err != nil {
		return false, err
	}
	r.read++
	return true, nil
}

// element returns the next element of the array, valid JSON (checked with
// the whole body), or false at its end.
func (r *AlertReader) element() ([]byte, bool) {
	b, i := r.raw, r.pos
	for i < len(b) && (b[i] == ',' || isSpace(b[i])) {
		i++
	}
	if i >= len(b) || b[i] == ']' {
		r.pos = len(b)
		return nil, false
	}
	start, depth, inString := i, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the array's own end, after a scalar
				r.pos = i
				return bytes.TrimSpace(b[start:i]), true
			}
			depth--
		case ',':
			if depth == 0 {
				r.pos = i
				return bytes.TrimSpace(b[start:i]), true
			}
		}
	}
	r.pos = len(b)
	return bytes.TrimSpace(b[start:]), true
}

// timeField names the timestamp of an alert that does not parse, as
// ".startsAt" or ".endsAt" ("" if neither fails): the time package's error
// does not say which field it was reading.
func timeField(elem []byte) string {
	var raw struct {
		StartsAt json.RawMessage `json:"startsAt"`
		EndsAt   json.RawMessage `json:"endsAt"`
	}
	if json.Unmarshal(elem, &raw) != nil {
		return ""
	}
	var t time.Time
	switch {
	case raw.StartsAt != nil && t.UnmarshalJSON(raw.StartsAt) != nil:
		return ".startsAt"
	case raw.EndsAt != nil && t.UnmarshalJSON(raw.EndsAt) != nil:
		return ".endsAt"
	}
	return ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "JSON object"
	case '"':
		return "JSON string"
	case 't', 'f':
		return "JSON boolean"
	case 'n':
		return "JSON null"
	}
	return "JSON number"
}

// describeJSONError turns a decoding error into an *InputError that names the
// JSON field; within is the path of the value being decoded ("alerts[3]").
func describeJSONError(err error, within string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var perr *time.ParseError
	at := func(field string) string {
		switch {
		case within == "":
			return field
		case field == "":
			return within
		}
		return within + "." + field
	}
	switch {
	case errors.As(err, &syn):
		if strings.Contains(syn.Error(), "after top-level value") {
			return inputErrorf("malformed JSON: trailing data after the payload object")
		}
		return inputErrorf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "payload"
			if within != "" {
				field = within
			}
		} else {
			field = at(field)
		}
		return inputErrorf("field %s: expected %s, got JSON %s", field, jsonType(typ.Type), typ.Value)
	case errors.As(err, &perr):
		return inputErrorf("%sunparseable timestamp %q: want RFC 3339", fieldPrefix(within), perr.Value)
	case errors.Is(err, io.EOF):
		return inputErrorf("empty body: want an Alertmanager webhook payload")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return inputErrorf("malformed JSON: unexpected end of input")
	default:
		// time.Time's UnmarshalJSON reports some problems without a ParseError.
		if strings.Contains(err.Error(), "parsing time") || strings.Contains(err.Error(), "Time.UnmarshalJSON") {
			return inputErrorf("%sunparseable timestamp: %v", fieldPrefix(within), err)
		}
		return inputErrorf("malformed JSON: %v", err)
	}
}

func fieldPrefix(within string) string {
	if within == "" {
		return ""
	}
	return "field " + within + ": "
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
	for _, f := range []struct {
		name  string
		value string
		max   int
	}{
		{"groupKey", m.GroupKey, MaxGroupKeyBytes},
		{"externalURL", m.ExternalURL, MaxURLBytes},
		{"receiver", m.Receiver, MaxReceiverBytes},
	} {
		if len(f.value) > f.max {
			return inputErrorf("field %s: %d bytes, at most %d allowed", f.name, len(f.value), f.max)
		}
	}
	return nil
}

// validateAlert checks one alert against what the pipeline, the store and
// the encoder can hold, and derives a missing fingerprint.
func validateAlert(i int, a *template.Alert) error {
	switch a.Status {
	case string(model.AlertFiring), string(model.AlertResolved):
	default:
		return inputErrorf(`field alerts[%d].status: %q is neither "firing" nor "resolved"`, i, a.Status)
	}
	if a.StartsAt.IsZero() {
		return inputErrorf("field alerts[%d].startsAt: missing; it identifies the alert occurrence", i)
	}
	// JSON (and so the store) can only hold years 0..9999; a valid RFC 3339
	// time such as 9999-12-31T23:59:59-23:59 is in year 10000 in UTC.
	for _, ts := range []struct {
		name string
		at   time.Time
	}{{"startsAt", a.StartsAt}, {"endsAt", a.EndsAt}} {
		if y := ts.at.UTC().Year(); y < 1 || y > 9999 {
			return inputErrorf("field alerts[%d].%s: %s is in year %d in UTC; years 1 to 9999 are allowed", i, ts.name, ts.at.Format(time.RFC3339Nano), y)
		}
	}
	if err := checkKV(i, "labels", a.Labels, MaxLabelValueBytes); err != nil {
		return err
	}
	if err := checkKV(i, "annotations", a.Annotations, MaxAnnotationValueBytes); err != nil {
		return err
	}
	if size := kvBytes(a.Labels) + kvBytes(a.Annotations); size > MaxAlertBytes {
		return inputErrorf("field alerts[%d]: labels and annotations of %d bytes together, at most %d allowed", i, size, MaxAlertBytes)
	}
	if len(a.GeneratorURL) > MaxURLBytes {
		return inputErrorf("field alerts[%d].generatorURL: %d bytes, at most %d allowed", i, len(a.GeneratorURL), MaxURLBytes)
	}
	if len(a.Fingerprint) > MaxFingerprintBytes {
		return inputErrorf("field alerts[%d].fingerprint: %d bytes, at most %d allowed (Alertmanager sends 16)", i, len(a.Fingerprint), MaxFingerprintBytes)
	}
	if a.Fingerprint == "" {
		// Alertmanager always sends it; derive it the same way for other senders.
		a.Fingerprint = Fingerprint(a.Labels)
	}
	return nil
}

func checkKV(i int, field string, kv template.KV, maxValue int) error {
	if len(kv) > MaxLabels {
		return inputErrorf("field alerts[%d].%s: %d entries, at most %d allowed", i, field, len(kv), MaxLabels)
	}
	for k, v := range kv {
		if len(k) > MaxLabelNameBytes {
			return inputErrorf("field alerts[%d].%s: a name of %d bytes (%q), at most %d allowed", i, field, len(k), clip.Bytes(k, 64), MaxLabelNameBytes)
		}
		if len(v) > maxValue {
			return inputErrorf("field alerts[%d].%s[%q]: value of %d bytes, at most %d allowed", i, field, clip.Bytes(k, 64), len(v), maxValue)
		}
	}
	return nil
}

func kvBytes(kv template.KV) int {
	n := 0
	for k, v := range kv {
		n += len(k) + len(v)
	}
	return n
}

// Fingerprint is Alertmanager's fingerprint of a label set, for alerts that
// come without one.
func Fingerprint(kv template.KV) string {
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
