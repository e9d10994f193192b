package rollback_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	appsclient "k8s.io/client-go/kubernetes/typed/apps/v1"

	"github.com/amtriage/amtriage/actions/rollback"
	"github.com/amtriage/amtriage/actions/rollback/rollbacktest"
	"github.com/amtriage/amtriage/internal/kubetest"
)

const (
	v1 = "registry.example/shop/web:1.4.2"
	v2 = "registry.example/shop/web:1.5.0"
)

func getDeployment(t *testing.T, c kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestUndoRestoresRevision: the Deployment ends with revision 1's template
// exactly as kubectl's undo leaves it.
func TestUndoRestoresRevision(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.NewNamespace(t, "shop")
	before, rss := rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)

	res, err := rollback.Undo(context.Background(), env.Client, ns, "web", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := rollback.Result{Namespace: ns, Deployment: "web", FromRevision: 2, ToRevision: 1,
		ReplicaSet: rss[0].Name, FromImages: []string{v2}, ToImages: []string{v1}}
	if !apiequality.Semantic.DeepEqual(res, want) {
		t.Errorf("result:\n got %+v\nwant %+v", res, want)
	}
	if s := res.String(); !strings.Contains(s, "from revision 2 ("+v2+") to revision 1 ("+v1+")") {
		t.Errorf("result text %q", s)
	}

	after := getDeployment(t, env.Client, ns, "web")
	// Revision 1's template, without the ReplicaSet's pod-template-hash label.
	wantTmpl := rss[0].Spec.Template.DeepCopy()
	delete(wantTmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if !apiequality.Semantic.DeepEqual(after.Spec.Template, *wantTmpl) {
		t.Errorf("template after undo:\n got %+v\nwant %+v", after.Spec.Template, *wantTmpl)
	}
	if _, ok := after.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		t.Error("pod-template-hash copied into the Deployment's template")
	}
	// Annotations as kubectl sets them: the revision's change-cause, the
	// Deployment's own revision and last-applied kept, none of the
	// ReplicaSet's replica counts.
	wantAnn := map[string]string{
		rollbacktest.RevisionAnnotation: "2",
		rollbacktest.LastApplied:        before.Annotations[rollbacktest.LastApplied],
		rollbacktest.ChangeCause:        rss[0].Annotations[rollbacktest.ChangeCause],
	}
	if !apiequality.Semantic.DeepEqual(after.Annotations, wantAnn) {
		t.Errorf("annotations after undo: got %v, want %v", after.Annotations, wantAnn)
	}
	// Nothing else touched.
	if *after.Spec.Replicas != *before.Spec.Replicas || !apiequality.Semantic.DeepEqual(after.Spec.Selector, before.Spec.Selector) {
		t.Errorf("spec beyond the template changed: replicas %d, selector %v", *after.Spec.Replicas, after.Spec.Selector)
	}
}

// TestUndoRefuses: each refusal is typed, says why, matches ErrRefused,
// and leaves the Deployment untouched.
func TestUndoRefuses(t *testing.T) {
	env := kubetest.Start(t)
	ctx := context.Background()
	cases := []struct {
		name                string
		setup               func(t *testing.T, ns string)
		toRevision, current int64
		check               func(t *testing.T, err error)
		text                []string
	}{
		{
			name: "moved on since the diagnosis", toRevision: 1, current: 1, // a third deploy happened
			setup: func(t *testing.T, ns string) {
				rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
			},
			check: func(t *testing.T, err error) {
				var e *rollback.MovedOnError
				if !errors.As(err, &e) || e.Expected != 1 || e.Current != 2 || e.Pending {
					t.Errorf("want MovedOnError{Expected:1 Current:2}, got %#v", err)
				}
			},
			text: []string{"at revision 2", "not at revision 1"},
		},
		{
			name: "template edited, new revision not recorded yet", toRevision: 1, current: 2,
			setup: func(t *testing.T, ns string) {
				rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
				d := getDeployment(t, env.Client, ns, "web")
				d.Spec.Template.Spec.Containers[0].Image = "registry.example/shop/web:1.6.0"
				if _, err := env.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, err error) {
				var e *rollback.MovedOnError
				if !errors.As(err, &e) || e.Current != 2 || !e.Pending {
					t.Errorf("want MovedOnError{Current:2 Pending}, got %#v", err)
				}
			},
			text: []string{"revision 2", "pending"},
		},
		{
			name: "missing revision", toRevision: 7, current: 2,
			setup: func(t *testing.T, ns string) {
				rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
			},
			check: func(t *testing.T, err error) {
				var e *rollback.RevisionNotFoundError
				if !errors.As(err, &e) || e.Revision != 7 || !slices.Equal(e.Available, []int64{1, 2}) {
					t.Errorf("want RevisionNotFoundError{Revision:7 Available:[1 2]}, got %#v", err)
				}
			},
			text: []string{"no revision 7", "revisions: 1, 2"},
		},
		{
			// Same labels, but controlled by another Deployment: not this one's history.
			name: "revision only on a ReplicaSet of another Deployment", toRevision: 3, current: 2,
			setup: func(t *testing.T, ns string) {
				d, _ := rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
				other := d.DeepCopy()
				other.Name, other.UID = "web-canary", types.UID("11111111-2222-3333-4444-555555555555")
				rollbacktest.ReplicaSet(t, env.Client, other, 3, "registry.example/shop/web:0.9", 0)
			},
			check: func(t *testing.T, err error) {
				var e *rollback.RevisionNotFoundError
				if !errors.As(err, &e) || !slices.Equal(e.Available, []int64{1, 2}) {
					t.Errorf("want RevisionNotFoundError{Available:[1 2]}, got %#v", err)
				}
			},
			text: []string{"no revision 3"},
		},
		{
			name: "revision 0 is not kubectl's 'previous' here", toRevision: 0, current: 2,
			setup: func(t *testing.T, ns string) {
				rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
			},
			check: func(t *testing.T, err error) {
				var e *rollback.RevisionNotFoundError
				if !errors.As(err, &e) {
					t.Errorf("want RevisionNotFoundError, got %#v", err)
				}
			},
			text: []string{"no revision 0"},
		},
		{
			name: "already the current template", toRevision: 2, current: 2,
			setup: func(t *testing.T, ns string) {
				rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
			},
			check: func(t *testing.T, err error) {
				var e *rollback.AlreadyCurrentError
				if !errors.As(err, &e) || e.Revision != 2 {
					t.Errorf("want AlreadyCurrentError{Revision:2}, got %#v", err)
				}
			},
			text: []string{"already runs the template of revision 2"},
		},
		{
			// An outbox retry of an undo that was applied, before the
			// controller records the new revision.
			name: "repeated after it was applied", toRevision: 1, current: 2,
			setup: func(t *testing.T, ns string) {
				rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
				if _, err := rollback.Undo(ctx, env.Client, ns, "web", 1, 2); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, err error) {
				var e *rollback.AlreadyCurrentError
				if !errors.As(err, &e) || e.Revision != 1 {
					t.Errorf("want AlreadyCurrentError{Revision:1}, got %#v", err)
				}
			},
			text: []string{"already runs the template of revision 1"},
		},
		{
			name: "paused", toRevision: 1, current: 2,
			setup: func(t *testing.T, ns string) {
				rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
				d := getDeployment(t, env.Client, ns, "web")
				d.Spec.Paused = true
				if _, err := env.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, err error) {
				var e *rollback.PausedError
				if !errors.As(err, &e) {
					t.Errorf("want PausedError, got %#v", err)
				}
			},
			text: []string{"is paused"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := env.NewNamespace(t, "shop")
			c.setup(t, ns)
			before := getDeployment(t, env.Client, ns, "web")

			_, err := rollback.Undo(ctx, env.Client, ns, "web", c.toRevision, c.current)
			if err == nil {
				t.Fatal("Undo succeeded")
			}
			c.check(t, err)
			if !errors.Is(err, rollback.ErrRefused) {
				t.Errorf("%v does not match ErrRefused", err)
			}
			for _, s := range append(c.text, ns+"/web") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if after := getDeployment(t, env.Client, ns, "web"); after.ResourceVersion != before.ResourceVersion {
				t.Errorf("a refused undo changed the Deployment (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
			}
		})
	}
}

// TestUndoLosesToConcurrentChange: a change landing between Undo's reads
// and its patch makes the patch fail; the change is not overwritten.
func TestUndoLosesToConcurrentChange(t *testing.T) {
	env := kubetest.Start(t)
	ctx := context.Background()
	ns := env.NewNamespace(t, "shop")
	rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)

	// Someone scales the Deployment just before the patch goes out.
	racing := racingClient{Interface: env.Client, beforePatch: func() {
		d := getDeployment(t, env.Client, ns, "web")
		d.Spec.Replicas = new(int32(5))
		if _, err := env.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}}
	_, err := rollback.Undo(ctx, racing, ns, "web", 1, 2)
	var ce *rollback.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("want ConflictError, got %v", err)
	}
	if errors.Is(err, rollback.ErrRefused) {
		t.Error("a conflict is retryable, not a refusal")
	}
	d := getDeployment(t, env.Client, ns, "web")
	if *d.Spec.Replicas != 5 || d.Spec.Template.Spec.Containers[0].Image != v2 {
		t.Errorf("after the conflict: replicas %d, image %s; want the concurrent scale to 5 and %s untouched",
			*d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image, v2)
	}

	// Called again, Undo checks afresh and succeeds.
	if _, err := rollback.Undo(ctx, env.Client, ns, "web", 1, 2); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if d := getDeployment(t, env.Client, ns, "web"); *d.Spec.Replicas != 5 || d.Spec.Template.Spec.Containers[0].Image != v1 {
		t.Errorf("after the retry: replicas %d, image %s; want 5 and %s", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image, v1)
	}
}

func TestUndoMissingDeployment(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.NewNamespace(t, "shop")
	_, err := rollback.Undo(context.Background(), env.Client, ns, "nope", 1, 2)
	if !apierrors.IsNotFound(err) || errors.Is(err, rollback.ErrRefused) || !strings.Contains(err.Error(), ns+"/nope") {
		t.Errorf("want a wrapped not-found API error naming %s/nope, got %v", ns, err)
	}
}

// racingClient runs beforePatch before each Deployment patch it sends.
type racingClient struct {
	kubernetes.Interface
	beforePatch func()
}

func (c racingClient) AppsV1() appsclient.AppsV1Interface {
	return racingApps{AppsV1Interface: c.Interface.AppsV1(), beforePatch: c.beforePatch}
}

type racingApps struct {
	appsclient.AppsV1Interface
	beforePatch func()
}

func (a racingApps) Deployments(ns string) appsclient.DeploymentInterface {
	return racingDeployments{DeploymentInterface: a.AppsV1Interface.Deployments(ns), beforePatch: a.beforePatch}
}

type racingDeployments struct {
	appsclient.DeploymentInterface
	beforePatch func()
}

func (d racingDeployments) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*appsv1.Deployment, error) {
	d.beforePatch()
	return d.DeploymentInterface.Patch(ctx, name, pt, data, opts, sub...)
}

// TestRestored: a repeated Undo whose first answer was lost can tell done
// (the template of the revision restored runs, renumbered by the
// controller or not) from moved on.
func TestRestored(t *testing.T) {
	env := kubetest.Start(t)
	ctx := context.Background()
	v3 := "registry.example/shop/web:1.6.0"
	undo := func(t *testing.T, ns string) {
		if _, err := rollback.Undo(ctx, env.Client, ns, "web", 1, 2); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, ns string)
		want  bool
	}{
		{name: "undone, the controller not caught up yet", want: true, setup: undo},
		{
			// What the deployment controller does after an undo: revision 1's
			// ReplicaSet becomes revision 3 and remembers it was 1.
			name: "undone and renumbered by the controller", want: true,
			setup: func(t *testing.T, ns string) {
				undo(t, ns)
				rs := rsAt(t, env.Client, ns, "1")
				rs.Annotations[rollback.RevisionAnnotation] = "3"
				rs.Annotations[rollback.RevisionHistoryAnnotation] = "1"
				if _, err := env.Client.AppsV1().ReplicaSets(ns).Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				d := getDeployment(t, env.Client, ns, "web")
				d.Annotations[rollback.RevisionAnnotation] = "3"
				if _, err := env.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{name: "never undone", setup: func(*testing.T, string) {}},
		{
			name: "moved on to another template",
			setup: func(t *testing.T, ns string) {
				d := getDeployment(t, env.Client, ns, "web")
				d.Spec.Template.Spec.Containers[0].Image = v3
				if _, err := env.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := env.NewNamespace(t, "shop")
			_, rss := rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
			c.setup(t, ns)
			res, ok, err := rollback.Restored(ctx, env.Client, ns, "web", 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.want {
				t.Fatalf("restored = %v, want %v", ok, c.want)
			}
			if !ok {
				return
			}
			want := rollback.Result{Namespace: ns, Deployment: "web", FromRevision: 2, ToRevision: 1,
				ReplicaSet: rss[0].Name, FromImages: []string{v2}, ToImages: []string{v1}}
			if !apiequality.Semantic.DeepEqual(res, want) {
				t.Errorf("result:\n got %+v\nwant %+v", res, want)
			}
		})
	}
	if _, _, err := rollback.Restored(ctx, env.Client, env.NewNamespace(t, "shop"), "nope", 1, 2); !apierrors.IsNotFound(err) {
		t.Errorf("a missing Deployment: want a not-found API error, got %v", err)
	}
}

// rsAt is the ReplicaSet of web at revision rev.
func rsAt(t *testing.T, c kubernetes.Interface, ns, rev string) *appsv1.ReplicaSet {
	t.Helper()
	list, err := c.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if list.Items[i].Annotations[rollback.RevisionAnnotation] == rev {
			return &list.Items[i]
		}
	}
	t.Fatalf("no ReplicaSet at revision %s in %s", rev, ns)
	return nil
}

// UndoBy records who rolled back as the Deployment's change-cause, which
// `kubectl rollout history` shows; Undo keeps the restored revision's.
func TestUndoByRecordsTheCause(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.NewNamespace(t, "shop")
	rollbacktest.Deploy(t, env.Client, ns, "web", v1, v2)
	const cause = "amtriage: rolled back to revision 1 from Slack by ana"
	if _, err := rollback.UndoBy(context.Background(), env.Client, ns, "web", 1, 2, cause); err != nil {
		t.Fatal(err)
	}
	if got := getDeployment(t, env.Client, ns, "web").Annotations[rollback.ChangeCauseAnnotation]; got != cause {
		t.Errorf("change-cause %q, want %q", got, cause)
	}
}
