package kubernetes_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	appsclient "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/actions/rollback"
	"github.com/amtriage/amtriage/actions/rollback/rollbacktest"
	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/kubetest"
	"github.com/amtriage/amtriage/notify"
	kubenotify "github.com/amtriage/amtriage/notify/kubernetes"
	"github.com/amtriage/amtriage/notify/notifytest"
)

const (
	v1 = "registry.example/shop/web:1.4.2"
	v2 = "registry.example/shop/web:1.5.0"
	v3 = "registry.example/shop/web:1.6.0"
)

// reports records what the receiver reported; fail makes the next n fail.
type reports struct {
	mu   sync.Mutex
	got  []*actions.Action
	fail int
}

func (r *reports) report(_ context.Context, a *actions.Action) error {
	if err := a.Validate(); err != nil {
		return err // the inbox would refuse it too
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("inbox unavailable")
	}
	r.got = append(r.got, a)
	return nil
}

func request(ns string, from, to int64) *incident.Event {
	return &incident.Event{Kind: incident.RollbackRequested, At: time.Now(), Incident: incident.Incident{ID: "web-3f2a"},
		Act: &incident.EventAct{Key: "slack:U0ANA:1700000100.000200", By: "<@U0ANA>", ResponseURL: "https://hooks.slack.com/actions/T1/2/3",
			Rollback: &diagnosis.Rollback{Namespace: ns, Deployment: "web", From: from, To: to}}}
}

func newReceiver(t *testing.T, client kubernetes.Interface, state notify.ReceiverState, r *reports) *kubenotify.Notifier {
	t.Helper()
	n, err := kubenotify.New(kubenotify.Config{Client: client, State: state, Report: r.report})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func image(t *testing.T, c kubernetes.Interface, ns string) (string, string) {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image, d.ResourceVersion
}

func update(t *testing.T, c kubernetes.Interface, ns string, change func(*appsv1.Deployment)) {
	t.Helper()
	ctx := context.Background()
	d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	change(d)
	if _, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackOutcomes: one delivery each; a rollback done or refused is
// reported once, with the outcome in words, and a refusal patches nothing.
func TestRollbackOutcomes(t *testing.T) {
	env := kubetest.Start(t)
	nobody := impersonate(t, env.Config, "system:serviceaccount:amtriage:amtriage") // no RBAC at all here
	cases := []struct {
		name     string
		setup    func(t *testing.T, ns string)
		client   kubernetes.Interface // default env.Client
		from, to int64
		text     []string // in Outcome.Text (done) or Outcome.Error (refused)
		refused  bool
		image    string // the Deployment's afterwards
	}{
		{name: "rolled back", from: 2, to: 1, image: v1,
			text: []string{"rolled back from revision 2 (" + v2 + ") to revision 1 (" + v1 + ")"}},
		{name: "moved on since the diagnosis", from: 2, to: 1, refused: true, image: v3,
			setup: func(t *testing.T, ns string) { bump(t, env.Client, ns) },
			text:  []string{"/web is at revision 3, not 2 as the diagnosis saw: refused; look again before rolling back"}},
		{name: "template changed, rollout pending", from: 2, to: 1, refused: true, image: v3,
			setup: func(t *testing.T, ns string) {
				update(t, env.Client, ns, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = v3 })
			},
			text: []string{"pod template changed since revision 2", "refused; look again"}},
		{name: "revision gone", from: 2, to: 7, refused: true, image: v2,
			text: []string{"has no revision 7 any more (it keeps revisions 1, 2", "roll back by hand"}},
		{name: "paused", from: 2, to: 1, refused: true, image: v2,
			setup: func(t *testing.T, ns string) {
				update(t, env.Client, ns, func(d *appsv1.Deployment) { d.Spec.Paused = true })
			},
			text: []string{"is paused", "kubectl rollout resume deployment/web -n "}},
		{name: "already rolled back by hand", from: 2, to: 1, refused: true, image: v1,
			setup: func(t *testing.T, ns string) {
				update(t, env.Client, ns, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = v1 })
			},
			text: []string{"already runs the pod template of revision 1: nothing to roll back"}},
		{name: "forbidden", from: 2, to: 1, refused: true, image: v2, client: nobody,
			text: []string{"lacks the opt-in Role of deploy/kubernetes/rollback-rbac.yaml in namespace ", "get and patch on Deployments"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := env.NewNamespace(t, "shop")
			rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
			if c.setup != nil {
				c.setup(t, ns)
			}
			_, rvBefore := image(t, env.Client, ns)
			client := c.client
			if client == nil {
				client = env.Client
			}
			r := &reports{}
			ev := request(ns, c.from, c.to)
			retry, err := newReceiver(t, client, &notifytest.MemState{}, r).Notify(context.Background(), ev)
			if err != nil || retry {
				t.Fatalf("Notify: retry=%v err=%v, want the outcome reported", retry, err)
			}
			if len(r.got) != 1 {
				t.Fatalf("%d reports, want 1", len(r.got))
			}
			a := r.got[0]
			o := a.Outcome
			if a.Kind != actions.Result || a.Key != "result:"+ev.Act.Key || a.Incident != "web-3f2a" || a.By.Source != "amtriage" ||
				a.ResponseURL != ev.Act.ResponseURL || o.For != actions.Rollback || o.RequestKey != ev.Act.Key {
				t.Errorf("report %+v outcome %+v", a, o)
			}
			said := o.Text
			if c.refused {
				said = o.Error
				if o.Text != "" {
					t.Errorf("a refusal with a text %q", o.Text)
				}
			} else if o.Error != "" {
				t.Errorf("done, with an error %q", o.Error)
			}
			for _, s := range append(c.text, ns+"/web") {
				if !strings.Contains(said, s) {
					t.Errorf("outcome %q does not say %q", said, s)
				}
			}
			img, rv := image(t, env.Client, ns)
			if img != c.image {
				t.Errorf("deployment runs %s, want %s", img, c.image)
			}
			if c.refused && rv != rvBefore {
				t.Errorf("a refusal changed the Deployment (resourceVersion %s -> %s)", rvBefore, rv)
			}
		})
	}
}

// TestRollbackRetries: deliveries repeated by the outbox. A transient
// failure is retried without a report; a patch whose answer was lost is
// recognised on the retry as done (even once the controller renumbered
// it), not refused as moved on; a failed Report is retried and reports the
// same outcome without touching the Deployment again.
func TestRollbackRetries(t *testing.T) {
	env := kubetest.Start(t)
	unavailable := apierrors.NewServiceUnavailable("etcd leader changed")
	type delivery struct {
		patch      func(apply func() error) error // wraps the Deployment patch (nil: as is)
		reportFail bool
		between    func(t *testing.T, ns string) // after this delivery
		retry      bool
	}
	cases := []struct {
		name       string
		deliveries []delivery
		wantText   string // in the one report
		wantImage  string
		patches    int // that reached the API server
	}{
		{
			name: "API server unavailable, then back",
			deliveries: []delivery{
				{patch: func(func() error) error { return unavailable }, retry: true},
				{},
			},
			wantText: "rolled back from revision 2", wantImage: v1, patches: 1,
		},
		{
			name: "conflict, then retried afresh",
			deliveries: []delivery{
				{patch: func(func() error) error {
					return apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "web", errors.New("changed"))
				}, retry: true},
				{},
			},
			wantText: "rolled back from revision 2", wantImage: v1, patches: 1,
		},
		{
			name: "patch applied, its answer lost",
			deliveries: []delivery{
				{patch: func(apply func() error) error {
					if err := apply(); err != nil {
						return err
					}
					return apierrors.NewTimeoutError("request timed out", 1)
				}, retry: true},
				{},
			},
			wantText: "rolled back from revision 2 (" + v2 + ") to revision 1 (" + v1 + ")", wantImage: v1, patches: 1,
		},
		{
			name: "patch applied, its answer lost, renumbered by the controller before the retry",
			deliveries: []delivery{
				{patch: func(apply func() error) error {
					if err := apply(); err != nil {
						return err
					}
					return errors.New("connection reset by peer")
				}, retry: true, between: func(t *testing.T, ns string) { renumber(t, env.Client, ns) }},
				{},
			},
			wantText: "rolled back from revision 2 (" + v2 + ") to revision 1 (" + v1 + ")", wantImage: v1, patches: 1,
		},
		{
			name: "report failed, then reported",
			deliveries: []delivery{
				{reportFail: true, retry: true},
				{},
			},
			wantText: "rolled back from revision 2", wantImage: v1, patches: 1,
		},
		{
			name: "moved on after a failed attempt: still refused",
			deliveries: []delivery{
				{patch: func(func() error) error { return unavailable }, retry: true,
					between: func(t *testing.T, ns string) { bump(t, env.Client, ns) }},
				{},
			},
			wantText: "is at revision 3, not 2 as the diagnosis saw", wantImage: v3, patches: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := env.NewNamespace(t, "shop")
			rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
			state, r, ev := &notifytest.MemState{}, &reports{}, request(ns, 2, 1)
			patches := 0
			for i, d := range c.deliveries {
				client := &patching{Interface: env.Client, patch: func(apply func() error) error {
					counted := func() error {
						err := apply()
						if err == nil {
							patches++
						}
						return err
					}
					if d.patch != nil {
						return d.patch(counted)
					}
					return counted()
				}}
				if d.reportFail {
					r.fail = 1
				}
				_, rvBefore := image(t, env.Client, ns)
				retry, err := newReceiver(t, client, state, r).Notify(context.Background(), ev)
				if retry != d.retry || (err != nil) != d.retry {
					t.Fatalf("delivery %d: retry=%v err=%v, want retry=%v", i+1, retry, err, d.retry)
				}
				if i > 0 && c.deliveries[i-1].reportFail {
					if _, rv := image(t, env.Client, ns); rv != rvBefore {
						t.Errorf("delivery %d repeated the rollback after a failed report (resourceVersion %s -> %s)", i+1, rvBefore, rv)
					}
				}
				if d.between != nil {
					d.between(t, ns)
				}
			}
			if len(r.got) != 1 {
				t.Fatalf("%d reports, want 1", len(r.got))
			}
			if o := r.got[0].Outcome; !strings.Contains(o.Text+o.Error, c.wantText) {
				t.Errorf("outcome %+v, want it to say %q", o, c.wantText)
			}
			if img, _ := image(t, env.Client, ns); img != c.wantImage {
				t.Errorf("deployment runs %s, want %s", img, c.wantImage)
			}
			if patches != c.patches {
				t.Errorf("%d patches applied, want %d", patches, c.patches)
			}
		})
	}
}

// TestTakesRollbackRequestsOnly: the outbox queues it nothing else, and
// any other event delivered is skipped.
func TestTakesRollbackRequestsOnly(t *testing.T) {
	n := newReceiver(t, kubernetes.New(nil), &notifytest.MemState{}, &reports{})
	for _, k := range []incident.EventKind{incident.Opened, incident.ResolvedEvent, incident.SilenceRequested,
		incident.UnsilenceRequested, incident.ActionRefused, incident.RolledBack, incident.Acknowledged} {
		if notify.Takes(n, k) {
			t.Errorf("takes %s", k)
		}
		if _, err := n.Notify(context.Background(), &incident.Event{Kind: k}); !errors.Is(err, notify.ErrSkipped) {
			t.Errorf("%s delivered: %v, want ErrSkipped", k, err)
		}
	}
	if !notify.Takes(n, incident.RollbackRequested) {
		t.Error("does not take rollback_requested")
	}
	if retry, err := n.Notify(context.Background(), &incident.Event{Kind: incident.RollbackRequested}); err == nil || retry {
		t.Errorf("a request without its rollback: retry=%v err=%v, want a permanent error", retry, err)
	}
}

// bump makes a revision 3 (v3), as a new rollout would.
func bump(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	update(t, c, ns, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = v3
		d.Annotations[rollback.RevisionAnnotation] = "3"
	})
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rollbacktest.ReplicaSet(t, c, d, 3, v3, 3)
}

// renumber does what the deployment controller does after an undo to
// revision 1: its ReplicaSet becomes revision 3, remembering it was 1.
func renumber(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	list, err := c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		rs := &list.Items[i]
		if rs.Annotations[rollback.RevisionAnnotation] == "1" {
			rs.Annotations[rollback.RevisionAnnotation] = "3"
			rs.Annotations[rollback.RevisionHistoryAnnotation] = "1"
			if _, err := c.AppsV1().ReplicaSets(ns).Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	update(t, c, ns, func(d *appsv1.Deployment) { d.Annotations[rollback.RevisionAnnotation] = "3" })
}

func impersonate(t *testing.T, cfg *rest.Config, user string) kubernetes.Interface {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	client, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// patching passes each Deployment patch through patch, which may fail it
// before (apply not called) or after it reached the API server.
type patching struct {
	kubernetes.Interface
	patch func(apply func() error) error
}

func (c *patching) AppsV1() appsclient.AppsV1Interface {
	return patchingApps{AppsV1Interface: c.Interface.AppsV1(), patch: c.patch}
}

type patchingApps struct {
	appsclient.AppsV1Interface
	patch func(apply func() error) error
}

func (a patchingApps) Deployments(ns string) appsclient.DeploymentInterface {
	return patchingDeployments{DeploymentInterface: a.AppsV1Interface.Deployments(ns), patch: a.patch}
}

type patchingDeployments struct {
	appsclient.DeploymentInterface
	patch func(apply func() error) error
}

func (d patchingDeployments) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*appsv1.Deployment, error) {
	var out *appsv1.Deployment
	err := d.patch(func() error {
		var err error
		out, err = d.DeploymentInterface.Patch(ctx, name, pt, data, opts, sub...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// A request queued for longer than GiveUpAfter is not carried out (the
// Deployment is not touched) and the user is told; one that keeps failing
// is given up on at that age too.
func TestRollbackGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name      string
		attempted bool
		want      string
	}{
		{"queued too long", false, "not done: the request waited"},
		{"failing until then", true, "given up after 15m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			patched := 0
			client.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetVerb() == "patch" {
					patched++
				}
				return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
			})
			r := &reports{}
			state := &notifytest.MemState{}
			n := newReceiver(t, client, state, r)
			ev := request("shop", 2, 1)
			if tc.attempted {
				if retry, _ := n.Notify(context.Background(), ev); !retry {
					t.Fatal("an unavailable apiserver: not retried")
				}
			}
			ev.At = time.Now().Add(-kubenotify.GiveUpAfter - time.Minute)
			if retry, err := n.Notify(context.Background(), ev); retry || err != nil {
				t.Fatalf("after %s: retry %v, %v; want it reported", kubenotify.GiveUpAfter, retry, err)
			}
			if len(r.got) != 1 || !strings.Contains(r.got[0].Outcome.Error, tc.want) || patched != 0 {
				t.Errorf("reported %+v, patched %d; want one failure saying %q, nothing patched", r.got, patched, tc.want)
			}
		})
	}
}
