// Package notify turns incident events into notifications: the routing table,
// the receivers (log today; PagerDuty, Slack and Grafana behind the same
// interface) and their durable, ordered delivery.
package notify

import (
	"context"
	"slices"

	"github.com/amtriage/amtriage/incident"
)

// Notifier delivers one incident event to one receiver. As in Alertmanager's
// notify.Notifier, retry reports whether a failed delivery may succeed later.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, ev *incident.Event) (retry bool, err error)
}

// EventFilter is a receiver that takes only some kinds of events: the
// outbox queues it no others.
type EventFilter interface {
	Takes(kind incident.EventKind) bool
}

// Takes reports whether n takes events of kind: as n says, else every kind
// but the action events (incident.ActionEvents), which are work for the
// action receivers.
func Takes(n Notifier, kind incident.EventKind) bool {
	if f, ok := n.(EventFilter); ok {
		return f.Takes(kind)
	}
	return !slices.Contains(incident.ActionEvents, kind)
}
