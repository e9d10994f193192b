// Package notify turns incident events into notifications: the routing table,
// the receivers (log today; PagerDuty, Slack and Grafana behind the same
// interface) and their durable, ordered delivery.
package notify

import (
	"context"

	"github.com/amtriage/amtriage/incident"
)

// Notifier delivers one incident event to one receiver. As in Alertmanager's
// notify.Notifier, retry reports whether a failed delivery may succeed later.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, ev *incident.Event) (retry bool, err error)
}
