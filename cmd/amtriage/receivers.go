package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/actions/silence"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/notify/alertmanager"
	"github.com/amtriage/amtriage/notify/grafana"
	kubenotify "github.com/amtriage/amtriage/notify/kubernetes"
	"github.com/amtriage/amtriage/notify/pagerduty"
	"github.com/amtriage/amtriage/notify/slack"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/kube"
)

// buildNotifiers builds the log notifier (incident events as JSON lines on
// events) and the configured receivers, each behind its routing (the SPEC's
// table, overridden per service profile; shadow mode pages nobody). hooks
// reach the daemon once it exists (nil in check-config's trial build). It
// runs at start, on every reload, and as check-config's trial build.
func buildNotifiers(cfg *rules.Config, log, events *slog.Logger, state notify.ReceiverState, hooks *daemonHooks) ([]notify.Notifier, error) {
	if hooks == nil {
		hooks = &daemonHooks{}
	}
	logged := &notify.LogNotifier{Log: events, Routes: cfg.RouteFor, Off: map[string]string{
		"pagerduty": "not configured", "slack": "not configured", "grafana": "not configured", "pagerduty_escalation": "not configured"}}
	out := []notify.Notifier{logged}
	routed := func(n notify.Notifier, pick func(rules.Route) rules.Severities) notify.Notifier {
		return &notify.Routed{Notifier: n, State: state, Sends: func(service string, sev severity.Level) bool {
			return pick(cfg.RouteFor(service)).Has(int(sev))
		}}
	}
	// Roll back is a responder's own act, not a page: shadow mode keeps it.
	// Built first: the Slack message offers Roll back only when it can be done.
	rollbackReady := false
	if cfg.Actions.Rollback.Enabled {
		// The diagnosis's kubeconfig (or in-cluster). Without a client triage
		// goes on, as the diagnosis does: Roll back is not offered, and a
		// click on an older button is answered that it cannot be done.
		client, err := kube.NewClientFromConfig(cfg.Kubernetes.Kubeconfig)
		if err != nil {
			log.Error("receiver disabled: Roll back cannot be done", "receiver", "kubernetes", "err", err)
		} else {
			n, err := kubenotify.New(kubenotify.Config{Client: client, State: state, Report: hooks.reportOutcome, Log: log})
			if err != nil {
				return nil, fmt.Errorf("kubernetes: %w", err)
			}
			out = append(out, n)
			rollbackReady = true
			log.Info("receiver enabled", "receiver", "kubernetes", "allowed_users", len(cfg.Actions.Rollback.AllowedUsers))
		}
	}
	if cfg.Slack.Token != "" && !cfg.Shadow {
		n, err := slack.New(slack.Config{
			APIURL: cfg.Slack.APIURL, Token: string(cfg.Slack.Token),
			Channel: cfg.Slack.Channel, IncidentsChannel: cfg.Slack.IncidentsChannel,
			OncallUsers: cfg.Slack.OncallUsers,
			Channels: func(service string) (string, string) {
				r := cfg.RouteFor(service)
				return r.SlackChannel, r.SlackIncidentsChannel
			},
			EvidenceURL:     evidenceURL(cfg),
			RollbackEnabled: rollbackReady,
			Log:             log,
		}, state)
		if err != nil {
			return nil, fmt.Errorf("slack: %w", err)
		}
		bh := cfg.Slack.BusinessHours
		hours, err := notify.ParseBusinessHours(bh.Timezone, bh.Start, bh.End, bh.Days)
		if err != nil {
			return nil, fmt.Errorf("slack.business_hours: %w", err)
		}
		held := &notify.HeldOutsideHours{Notifier: n, Hours: hours, Severities: map[severity.Level]bool{4: true}, Now: time.Now,
			Peak: hooks.peakSeverity}
		out = append(out, routed(held, func(r rules.Route) rules.Severities { return r.Slack }))
		delete(logged.Off, "slack")
		log.Info("receiver enabled", "receiver", "slack", "api_url", cfg.Slack.APIURL)
	}
	if cfg.Grafana.URL != "" {
		n, err := grafana.New(grafana.Config{URL: cfg.Grafana.URL, Token: cfg.Grafana.Token,
			DashboardUID: cfg.Grafana.DashboardUID, PanelID: cfg.Grafana.PanelID}, state)
		if err != nil {
			return nil, fmt.Errorf("grafana: %w", err)
		}
		out = append(out, routed(n, func(r rules.Route) rules.Severities { return r.Grafana }))
		delete(logged.Off, "grafana")
		log.Info("receiver enabled", "receiver", "grafana", "url", cfg.Grafana.URL)
	}
	keys := map[string]rules.Secret{}
	for _, svc := range cfg.Services {
		if svc.Routing.PagerDutyRoutingKey != "" {
			keys[svc.Name] = svc.Routing.PagerDutyRoutingKey
		}
	}
	if (cfg.PagerDuty.RoutingKey != "" || len(keys) > 0) && !cfg.Shadow {
		n, err := pagerduty.New(pagerduty.Config{
			URL: cfg.PagerDuty.URL, RoutingKey: cfg.PagerDuty.RoutingKey, ServiceRoutingKeys: keys,
			GrafanaURL: cfg.Grafana.URL, RateLimit: cfg.PagerDuty.EventsPerMinute, RateWindow: time.Minute,

			EscalationRoutingKey: cfg.PagerDuty.EscalationRoutingKey,
		})
		if err != nil {
			return nil, fmt.Errorf("pagerduty: %w", err)
		}
		out = append(out, routed(n, func(r rules.Route) rules.Severities { return r.PagerDuty }))
		delete(logged.Off, "pagerduty")
		if cfg.PagerDuty.EscalationRoutingKey != "" {
			delete(logged.Off, "pagerduty_escalation")
		}
		log.Info("receiver enabled", "receiver", "pagerduty", "url", cfg.PagerDuty.URL, "service_keys", len(keys))
	}
	if cfg.Alertmanager.URL != "" {
		// Even in shadow mode: a silence is not a page, it is made only on
		// a responder's signed request, and the endpoint takes those
		// whenever alertmanager.url is set; without this receiver the
		// incident's silence would stay "being made".
		n, err := silenceReceiver(cfg, log, hooks)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		log.Info("receiver enabled", "receiver", "alertmanager", "url", cfg.Alertmanager.URL)
	}
	if cfg.Shadow {
		log.Info("shadow mode: classifying and annotating, paging nobody")
		if cfg.Slack.Token != "" {
			logged.Off["slack"] = "shadow mode"
		}
		if cfg.PagerDuty.RoutingKey != "" || len(keys) > 0 {
			logged.Off["pagerduty"] = "shadow mode"
		}
	}
	return out, nil
}

// silenceReceiver makes the Silence buttons' silences in
// cfg.Alertmanager, reporting outcomes to the daemon.
func silenceReceiver(cfg *rules.Config, log *slog.Logger, hooks *daemonHooks) (*alertmanager.Notifier, error) {
	am := cfg.Alertmanager
	sc := silence.Config{URL: am.URL, HTTPClient: notify.NewHTTPClient(cmp.Or(time.Duration(am.Timeout), 10*time.Second)),
		BearerToken: string(am.BearerToken)}
	if am.BasicAuth.Username != "" {
		sc.BasicAuth = &silence.BasicAuth{Username: am.BasicAuth.Username, Password: string(am.BasicAuth.Password)}
	}
	c, err := silence.New(sc)
	if err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	n, err := alertmanager.New(alertmanager.Config{Client: c, Report: hooks.reportOutcome, Log: log.With("receiver", "alertmanager")})
	if err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	return n, nil
}

// evidenceURL links a Sev 1–2 incident's evidence from Slack: nil without
// external_url, or when no evidence source is configured (none is gathered).
func evidenceURL(cfg *rules.Config) func(string) string {
	gathered := cfg.Kubernetes.Enabled || cfg.Prometheus.URL != "" || (cfg.Grafana.URL != "" && len(cfg.Grafana.Render.PanelIDs) > 0)
	if cfg.ExternalURL == "" || !gathered {
		return nil
	}
	return func(id string) string { return cfg.ExternalURL + "/api/incidents/" + url.PathEscape(id) + "/evidence" }
}

// daemonHooks are the daemon's, for receivers built before it exists: set
// once it does.
type daemonHooks struct {
	// peak gives an incident's peak severity.
	peak func(string) (severity.Level, bool)
	// report appends an action receiver's outcome to the inbox.
	report func(context.Context, *actions.Action) error
}

func (h *daemonHooks) peakSeverity(id string) (severity.Level, bool) {
	if h.peak == nil {
		return 0, false
	}
	return h.peak(id)
}

// reportOutcome is the action receivers' Report.
func (h *daemonHooks) reportOutcome(ctx context.Context, a *actions.Action) error {
	if h.report == nil {
		return errors.New("the daemon is not running yet")
	}
	return h.report(ctx, a)
}
