// Package kubernetes is the rollback receiver: it does the Roll back a
// responder clicked (incident.RollbackRequested) through the Kubernetes
// API with actions/rollback, and reports the outcome back through the
// inbox as an actions.Result, which the pipeline puts on the timeline and
// tells Slack.
//
// A delivery may be repeated (the outbox retries until an outcome is
// reported). Before patching, the request key is recorded in
// notify.ReceiverState, so a retry after a patch whose answer was lost
// recognises its own rollback (rollback.Restored) instead of refusing it
// as "moved on"; once an outcome is known it is recorded too, and a retry
// only reports it again.
package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/actions/rollback"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/clip"
	"github.com/amtriage/amtriage/notify"
)

// receiverName is Name() and the key of this receiver's ReceiverState.
const receiverName = "kubernetes"

// RBACFile is the opt-in Role a Forbidden rollback points the user to.
const RBACFile = "deploy/kubernetes/rollback-rbac.yaml"

// maxRequests bounds the requests remembered per incident: retries of one
// come within minutes, and an incident sees few rollbacks.
const maxRequests = 8

// Config configures the receiver.
type Config struct {
	Client kubernetes.Interface
	// State keeps, per incident, the requests attempted and their outcome.
	State notify.ReceiverState
	// Report appends an outcome to the inbox (the daemon's AppendAction).
	Report func(context.Context, *actions.Action) error
	Now    func() time.Time // default time.Now
	Log    *slog.Logger     // default slog.Default()
}

// Notifier performs rollbacks. The outbox serialises one incident's events.
type Notifier struct{ cfg Config }

// State is what the receiver remembers per incident (in ReceiverState).
type State struct {
	Requests []Request `json:"requests"`
}

// Request is one rollback request seen: attempted (the patch may have
// gone out), and its outcome once known.
type Request struct {
	Key     string           `json:"key"`
	Outcome *actions.Outcome `json:"outcome,omitempty"`
}

// New builds the receiver.
func New(cfg Config) (*Notifier, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("kubernetes receiver: a Kubernetes client is required")
	case cfg.State == nil:
		return nil, errors.New("kubernetes receiver: receiver state is required")
	case cfg.Report == nil:
		return nil, errors.New("kubernetes receiver: Report is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Notifier{cfg: cfg}, nil
}

// GiveUpAfter bounds how long after the click a rollback is tried: a
// request that could not be carried out by then is reported failed, as the
// silences' receiver does.
const GiveUpAfter = 15 * time.Minute

// Name implements notify.Notifier.
func (n *Notifier) Name() string { return receiverName }

// Takes implements notify.EventFilter: rollback requests only.
func (n *Notifier) Takes(kind incident.EventKind) bool { return kind == incident.RollbackRequested }

// Notify implements notify.Notifier: it rolls the Deployment back from
// revision From to To unless it moved on, and reports the outcome. Refusals
// and permanent failures are reported with Outcome.Error (the user is told);
// conflicts, transient API errors and a failed Report are retried.
func (n *Notifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	if ev.Kind != incident.RollbackRequested {
		return false, notify.ErrSkipped
	}
	act := ev.Act
	if act == nil || act.Key == "" || act.Rollback == nil || act.Rollback.Namespace == "" || act.Rollback.Deployment == "" {
		return false, errors.New("kubernetes receiver: rollback event without its request")
	}
	id := ev.Incident.ID
	var st State
	if _, err := n.cfg.State.LoadReceiverState(receiverName, id, &st); err != nil {
		return true, fmt.Errorf("kubernetes receiver: load state of %s: %w", id, err)
	}
	i := slices.IndexFunc(st.Requests, func(r Request) bool { return r.Key == act.Key })
	if i >= 0 && st.Requests[i].Outcome != nil {
		return n.report(ctx, ev, st.Requests[i].Outcome)
	}
	attempted := i >= 0
	if late := n.cfg.Now().Sub(ev.At); !attempted && late >= GiveUpAfter {
		// Queued this long (the outbox behind a hung receiver, a takeover):
		// what the responder saw then is not to be acted on now.
		return n.report(ctx, ev, &actions.Outcome{For: actions.Rollback, RequestKey: act.Key,
			Error: fmt.Sprintf("not done: the request waited %s (more than %s) to be carried out; look at the incident again and click again if it still needs it", late.Round(time.Second), GiveUpAfter)})
	}
	if !attempted {
		st.Requests = append(st.Requests, Request{Key: act.Key})
		if over := len(st.Requests) - maxRequests; over > 0 {
			st.Requests = st.Requests[over:]
		}
		// Saved before the patch: a retry must know it may have gone out.
		if err := n.cfg.State.SaveReceiverState(receiverName, id, st); err != nil {
			return true, fmt.Errorf("kubernetes receiver: record rollback request of %s: %w", id, err)
		}
	}
	out, retry, err := n.rollBack(ctx, act, attempted)
	if out == nil && n.cfg.Now().Sub(ev.At) >= GiveUpAfter {
		out = &actions.Outcome{For: actions.Rollback, RequestKey: act.Key,
			Error: clip.Bytes(fmt.Sprintf("given up after %s: %v; the Deployment may or may not have been patched: look at it", GiveUpAfter, err), actions.MaxFieldBytes)}
	}
	if out == nil {
		return retry, err
	}
	if i := slices.IndexFunc(st.Requests, func(r Request) bool { return r.Key == act.Key }); i >= 0 {
		st.Requests[i].Outcome = out
		if err := n.cfg.State.SaveReceiverState(receiverName, id, st); err != nil {
			// The outcome is reported anyway; a retry works it out again.
			n.cfg.Log.Warn("kubernetes receiver: recording a rollback outcome", "incident", id, "err", err)
		}
	}
	return n.report(ctx, ev, out)
}

// rollBack does the undo and says its outcome, or (nil outcome) that it
// must be retried.
func (n *Notifier) rollBack(ctx context.Context, act *incident.EventAct, attempted bool) (*actions.Outcome, bool, error) {
	r := act.Rollback
	out := &actions.Outcome{For: actions.Rollback, RequestKey: act.Key}
	cause := clip.Bytes(fmt.Sprintf("amtriage: rolled back to revision %d from Slack by %s", r.To, cmp.Or(act.ByName, act.By)), 1024)
	res, err := rollback.UndoBy(ctx, n.cfg.Client, r.Namespace, r.Deployment, r.To, r.From, cause)
	if errors.Is(err, rollback.ErrRefused) && attempted {
		// Ours, applied, its answer lost: done, not moved on.
		done, ok, rerr := rollback.Restored(ctx, n.cfg.Client, r.Namespace, r.Deployment, r.To, r.From)
		if rerr != nil {
			err = rerr
		} else if ok {
			res, err = done, nil
		}
	}
	if err == nil {
		out.Text = clip.Bytes(res.String(), actions.MaxFieldBytes) // the book names who asked
		n.cfg.Log.Info("rolled back", "namespace", r.Namespace, "deployment", r.Deployment, "from", r.From, "to", r.To, "by", act.By)
		return out, false, nil
	}
	if retryable(err) {
		return nil, true, fmt.Errorf("kubernetes receiver: %w", err)
	}
	out.Error = clip.Bytes(refusal(err, r.Namespace, r.Deployment, r.From, r.To), actions.MaxFieldBytes)
	n.cfg.Log.Warn("rollback refused or failed", "namespace", r.Namespace, "deployment", r.Deployment, "by", act.By, "err", err)
	return out, false, nil
}

// report sends the outcome through the inbox; a failure is retried (the
// result's key makes a repeat harmless).
func (n *Notifier) report(ctx context.Context, ev *incident.Event, out *actions.Outcome) (bool, error) {
	a := &actions.Action{
		Key: actions.ResultKey(ev.Act.Key), Kind: actions.Result, At: n.cfg.Now().UTC(),
		By: actions.Actor{Source: "amtriage"}, Incident: ev.Incident.ID, ResponseURL: ev.Act.ResponseURL, Outcome: out,
	}
	if len(a.ResponseURL) > actions.MaxFieldBytes {
		a.ResponseURL = "" // a clipped URL is no URL; the timeline still says it
	}
	if err := n.cfg.Report(ctx, a); err != nil {
		return true, fmt.Errorf("kubernetes receiver: report rollback outcome of %s: %w", ev.Incident.ID, err)
	}
	return false, nil
}

// retryable: the same request may succeed later (a concurrent change, an
// API server busy or unreachable). Refusals, and API answers that will not
// change by themselves (forbidden, not found, invalid), are not.
func retryable(err error) bool {
	var conflict *rollback.ConflictError
	var num *strconv.NumError
	var status apierrors.APIStatus
	switch {
	case errors.Is(err, rollback.ErrRefused), errors.As(err, &num):
		return false
	case errors.As(err, &conflict), apierrors.IsConflict(err):
		return true
	case errors.As(err, &status):
		return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
			apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err) ||
			status.Status().Code >= 500
	default:
		return true // no answer from the API server: network, deadline
	}
}

// refusal says why the rollback was not done, in words the user can act on.
func refusal(err error, ns, name string, from, to int64) string {
	dep := ns + "/" + name
	var (
		moved   *rollback.MovedOnError
		missing *rollback.RevisionNotFoundError
		already *rollback.AlreadyCurrentError
		paused  *rollback.PausedError
	)
	switch {
	case errors.As(err, &moved) && moved.Pending:
		return fmt.Sprintf("deployment %s's pod template changed since revision %d, which the diagnosis saw (a new rollout is under way): refused; look again before rolling back", dep, from)
	case errors.As(err, &moved):
		return fmt.Sprintf("deployment %s is at revision %d, not %d as the diagnosis saw: refused; look again before rolling back", dep, moved.Current, from)
	case errors.As(err, &missing):
		have := make([]string, len(missing.Available))
		for i, r := range missing.Available {
			have[i] = strconv.FormatInt(r, 10)
		}
		return fmt.Sprintf("deployment %s has no revision %d any more (it keeps revisions %s; see its revisionHistoryLimit): refused; roll back by hand to one it has", dep, to, strings.Join(have, ", "))
	case errors.As(err, &already):
		return fmt.Sprintf("deployment %s already runs the pod template of revision %d: nothing to roll back", dep, to)
	case errors.As(err, &paused):
		return fmt.Sprintf("deployment %s is paused (someone is changing it by hand): refused; resume it (kubectl rollout resume deployment/%s -n %s) or roll back by hand", dep, name, ns)
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("amtriage may not roll back deployment %s: its ServiceAccount lacks the opt-in Role of %s in namespace %s (get and patch on Deployments); apply it there, or roll back by hand", dep, RBACFile, ns)
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("deployment %s does not exist (any more): nothing rolled back", dep)
	case apierrors.IsUnauthorized(err):
		return fmt.Sprintf("the Kubernetes API refused amtriage's credentials: deployment %s not rolled back; check kubernetes.kubeconfig or the ServiceAccount token", dep)
	default:
		return fmt.Sprintf("rolling back deployment %s failed: %v", dep, err)
	}
}
