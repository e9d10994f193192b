// Package rollback does what `kubectl rollout undo deployment/X
// --to-revision=N` does, through the API, with guards: it refuses when the
// Deployment is no longer at the revision a diagnosis saw, and its patch is
// conditioned on the resourceVersion it read, so a concurrent change makes
// it fail instead of being overwritten.
//
// The logic follows kubectl's DeploymentRollbacker
// (k8s.io/kubectl/pkg/polymorphichelpers/rollback.go), which is not a
// dependency of this module: the ReplicaSets are those matching the
// Deployment's selector and controlled by it; the pod template restored is
// the ReplicaSet's minus its pod-template-hash label; the Deployment's
// annotations become the ReplicaSet's, except the ones the deployment
// controller owns, which are kept.
package rollback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// RevisionAnnotation is where the deployment controller records a
// Deployment's and each of its ReplicaSets' revision.
const RevisionAnnotation = "deployment.kubernetes.io/revision"

// keepAnnotations are the Deployment's own annotations a rollback keeps
// rather than copying them from the ReplicaSet (kubectl's annotationsToSkip).
var keepAnnotations = map[string]bool{
	corev1.LastAppliedConfigAnnotation:          true,
	RevisionAnnotation:                          true,
	RevisionHistoryAnnotation:                   true,
	"deployment.kubernetes.io/desired-replicas": true,
	"deployment.kubernetes.io/max-replicas":     true,
	appsv1.DeprecatedRollbackTo:                 true,
}

// Result describes a rollback that was applied.
type Result struct {
	Namespace, Deployment string
	// FromRevision is the revision the Deployment was at; ToRevision the one
	// whose template was restored. The deployment controller then records
	// the restored template as a new revision (the highest plus one), as it
	// does after kubectl's undo.
	FromRevision, ToRevision int64
	// ReplicaSet is the ReplicaSet of ToRevision, whose template was copied.
	ReplicaSet string
	// FromImages and ToImages are the containers' images, in order, of the
	// template replaced and of the one restored.
	FromImages, ToImages []string
}

// String is a one-line account for a timeline or a message.
func (r Result) String() string {
	return fmt.Sprintf("deployment %s/%s rolled back from revision %d (%s) to revision %d (%s)",
		r.Namespace, r.Deployment, r.FromRevision, strings.Join(r.FromImages, ", "),
		r.ToRevision, strings.Join(r.ToImages, ", "))
}

// ErrRefused matches (errors.Is) every refusal: the state of the Deployment
// forbids this rollback, and retrying the same request will not help.
// Errors that do not match it (API errors, *ConflictError) may be retried.
var ErrRefused = errors.New("rollback refused")

// MovedOnError: the Deployment is not at the revision the caller expected
// (the one the diagnosis saw), or its template has changed since that
// revision and the new rollout is not recorded yet (Pending).
type MovedOnError struct {
	Namespace, Deployment string
	Expected, Current     int64
	Pending               bool
}

func (e *MovedOnError) Error() string {
	if e.Pending {
		return fmt.Sprintf("deployment %s/%s is at revision %d but its pod template has changed since (a new rollout is pending): not rolling back",
			e.Namespace, e.Deployment, e.Current)
	}
	return fmt.Sprintf("deployment %s/%s is at revision %d, not at revision %d as when diagnosed: not rolling back",
		e.Namespace, e.Deployment, e.Current, e.Expected)
}

func (e *MovedOnError) Is(target error) bool { return target == ErrRefused }

// RevisionNotFoundError: no ReplicaSet of the Deployment has that revision
// (never existed, or pruned by revisionHistoryLimit).
type RevisionNotFoundError struct {
	Namespace, Deployment string
	Revision              int64
	// Available are the revisions its ReplicaSets have, ascending.
	Available []int64
}

func (e *RevisionNotFoundError) Error() string {
	have := make([]string, len(e.Available))
	for i, r := range e.Available {
		have[i] = strconv.FormatInt(r, 10)
	}
	return fmt.Sprintf("deployment %s/%s has no revision %d (revisions: %s): not rolling back",
		e.Namespace, e.Deployment, e.Revision, strings.Join(have, ", "))
}

func (e *RevisionNotFoundError) Is(target error) bool { return target == ErrRefused }

// AlreadyCurrentError: the Deployment's template already is that revision's.
type AlreadyCurrentError struct {
	Namespace, Deployment string
	Revision              int64
}

func (e *AlreadyCurrentError) Error() string {
	return fmt.Sprintf("deployment %s/%s already runs the template of revision %d: nothing to roll back",
		e.Namespace, e.Deployment, e.Revision)
}

func (e *AlreadyCurrentError) Is(target error) bool { return target == ErrRefused }

// PausedError: the Deployment is paused; kubectl refuses those too, since
// the controller would not roll the change out.
type PausedError struct {
	Namespace, Deployment string
}

func (e *PausedError) Error() string {
	return fmt.Sprintf("deployment %s/%s is paused: not rolling back (someone is changing it by hand; resume it first)",
		e.Namespace, e.Deployment)
}

func (e *PausedError) Is(target error) bool { return target == ErrRefused }

// ConflictError: the Deployment changed between the checks and the patch;
// nothing was changed. Undo may be called again: it checks afresh.
type ConflictError struct {
	Namespace, Deployment string
	Err                   error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("deployment %s/%s changed while rolling back, nothing was changed: %v", e.Namespace, e.Deployment, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// Undo sets the pod template of the Deployment back to the one of its
// ReplicaSet at revision toRevision, provided the Deployment is still at
// revision expectCurrent with that revision's template, is not paused, and
// is not already at toRevision's template. Refusals match ErrRefused; API
// errors are wrapped (apierrors.IsForbidden etc. see through them).
func Undo(ctx context.Context, client kubernetes.Interface, namespace, deployment string, toRevision, expectCurrent int64) (Result, error) {
	return UndoBy(ctx, client, namespace, deployment, toRevision, expectCurrent, "")
}

// ChangeCauseAnnotation records why a Deployment's template changed; the
// controller copies it to the ReplicaSet, and `kubectl rollout history`
// shows it.
const ChangeCauseAnnotation = "kubernetes.io/change-cause"

// UndoBy is Undo that records cause (who rolled back, and why) as the
// Deployment's change-cause, so the cluster's own history says it too.
// An empty cause keeps the restored revision's, as kubectl does.
func UndoBy(ctx context.Context, client kubernetes.Interface, namespace, deployment string, toRevision, expectCurrent int64, cause string) (Result, error) {
	if namespace == "" || deployment == "" {
		return Result{}, fmt.Errorf("rollback: namespace and deployment are required (got %q/%q)", namespace, deployment)
	}
	d, err := client.AppsV1().Deployments(namespace).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return Result{}, fmt.Errorf("rollback: get deployment %s/%s: %w", namespace, deployment, err)
	}
	current, err := revision(d.Annotations)
	if err != nil {
		return Result{}, fmt.Errorf("rollback: deployment %s/%s: %w", namespace, deployment, err)
	}
	if current != expectCurrent {
		return Result{}, &MovedOnError{Namespace: namespace, Deployment: deployment, Expected: expectCurrent, Current: current}
	}
	if d.Spec.Paused {
		return Result{}, &PausedError{Namespace: namespace, Deployment: deployment}
	}
	rss, err := replicaSets(ctx, client, d)
	if err != nil {
		return Result{}, err
	}
	target := atRevision(rss, toRevision)
	if target == nil || toRevision < 1 {
		return Result{}, &RevisionNotFoundError{Namespace: namespace, Deployment: deployment, Revision: toRevision, Available: revisions(rss)}
	}
	// Before the pending check: a repeat of an undo that was applied (and
	// not yet picked up by the controller) is told it is already done.
	if equalIgnoreHash(&target.Spec.Template, &d.Spec.Template) {
		return Result{}, &AlreadyCurrentError{Namespace: namespace, Deployment: deployment, Revision: toRevision}
	}
	// The annotation alone may lag an edit of the template: the template
	// must still be the expected revision's.
	if live := templateOwner(d, rss); live == nil || mustRevision(live) != expectCurrent {
		return Result{}, &MovedOnError{Namespace: namespace, Deployment: deployment, Expected: expectCurrent, Current: current, Pending: true}
	}

	patch, err := undoPatch(d, target, cause)
	if err != nil {
		return Result{}, fmt.Errorf("rollback: deployment %s/%s: build patch: %w", namespace, deployment, err)
	}
	if _, err := client.AppsV1().Deployments(namespace).Patch(ctx, deployment, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return Result{}, &ConflictError{Namespace: namespace, Deployment: deployment, Err: err}
		}
		return Result{}, fmt.Errorf("rollback: patch deployment %s/%s to revision %d: %w", namespace, deployment, toRevision, err)
	}
	return Result{
		Namespace: namespace, Deployment: deployment,
		FromRevision: current, ToRevision: toRevision, ReplicaSet: target.Name,
		FromImages: images(&d.Spec.Template), ToImages: images(&target.Spec.Template),
	}, nil
}

// RevisionHistoryAnnotation is where the deployment controller keeps the
// earlier revisions of a ReplicaSet whose template a Deployment returned
// to: it renumbers that ReplicaSet to the newest revision.
const RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"

// Restored reports whether the Deployment runs the pod template of its
// revision toRevision, as it does once an Undo to it was applied, whether
// or not the deployment controller has recorded that as a new revision
// since. It tells a repeated Undo whose first answer was lost (Undo then
// refuses: AlreadyCurrentError, or MovedOnError once the controller
// renumbered) from one that really moved on. The Result is that rollback's;
// FromImages are fromRevision's, when its ReplicaSet is still there.
func Restored(ctx context.Context, client kubernetes.Interface, namespace, deployment string, toRevision, fromRevision int64) (Result, bool, error) {
	d, err := client.AppsV1().Deployments(namespace).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return Result{}, false, fmt.Errorf("rollback: get deployment %s/%s: %w", namespace, deployment, err)
	}
	rss, err := replicaSets(ctx, client, d)
	if err != nil {
		return Result{}, false, err
	}
	target := atRevision(rss, toRevision)
	if target == nil {
		target = withHistory(rss, toRevision)
	}
	if target == nil || !equalIgnoreHash(&target.Spec.Template, &d.Spec.Template) {
		return Result{}, false, nil
	}
	res := Result{Namespace: namespace, Deployment: deployment, FromRevision: fromRevision, ToRevision: toRevision,
		ReplicaSet: target.Name, ToImages: images(&d.Spec.Template)}
	if from := atRevision(rss, fromRevision); from != nil {
		res.FromImages = images(&from.Spec.Template)
	}
	return res, true, nil
}

// withHistory is the ReplicaSet that was revision rev before the
// controller renumbered it, or nil.
func withHistory(rss []*appsv1.ReplicaSet, rev int64) *appsv1.ReplicaSet {
	want := strconv.FormatInt(rev, 10)
	for _, rs := range rss {
		for _, r := range strings.Split(rs.Annotations[RevisionHistoryAnnotation], ",") {
			if strings.TrimSpace(r) == want {
				return rs
			}
		}
	}
	return nil
}

// replicaSets lists the ReplicaSets matching d's selector and controlled by
// d (kubectl's listReplicaSets), oldest first.
func replicaSets(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("rollback: deployment %s/%s: selector: %w", d.Namespace, d.Name, err)
	}
	opts := metav1.ListOptions{LabelSelector: sel.String(), Limit: 500}
	var owned []*appsv1.ReplicaSet
	for {
		list, err := client.AppsV1().ReplicaSets(d.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("rollback: list replicasets of deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
		for i := range list.Items {
			if rs := &list.Items[i]; metav1.IsControlledBy(rs, d) {
				owned = append(owned, rs)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	sort.SliceStable(owned, func(i, j int) bool {
		a, b := owned[i], owned[j]
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.Name < b.Name
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
	return owned, nil
}

// templateOwner is the ReplicaSet running d's current template, the oldest
// if several (kubectl's findNewReplicaSet), or nil.
func templateOwner(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	for _, rs := range rss {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

func atRevision(rss []*appsv1.ReplicaSet, rev int64) *appsv1.ReplicaSet {
	for _, rs := range rss {
		if r, err := revision(rs.Annotations); err == nil && r == rev {
			return rs
		}
	}
	return nil
}

func revisions(rss []*appsv1.ReplicaSet) []int64 {
	var out []int64
	for _, rs := range rss {
		if r, err := revision(rs.Annotations); err == nil && r > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// revision reads the revision annotation; a missing one is revision 0, as
// kubectl reads it.
func revision(annotations map[string]string) (int64, error) {
	v, ok := annotations[RevisionAnnotation]
	if !ok {
		return 0, nil
	}
	r, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("annotation %s=%q: %w", RevisionAnnotation, v, err)
	}
	return r, nil
}

// mustRevision is revision for a comparison: unreadable is -1, no match.
func mustRevision(rs *appsv1.ReplicaSet) int64 {
	r, err := revision(rs.Annotations)
	if err != nil {
		return -1
	}
	return r
}

// equalIgnoreHash compares templates ignoring the pod-template-hash label,
// which ReplicaSets carry and Deployments do not.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return apiequality.Semantic.DeepEqual(a, b)
}

// undoPatch is kubectl's JSON patch (template replaced, annotations merged)
// plus the resourceVersion d was read at: the API server then rejects the
// patch with a Conflict if the Deployment changed since.
func undoPatch(d *appsv1.Deployment, rs *appsv1.ReplicaSet, cause string) ([]byte, error) {
	annotations := undoAnnotations(d.Annotations, rs.Annotations)
	if cause != "" {
		annotations[ChangeCauseAnnotation] = cause
	}
	tmpl := rs.Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	return json.Marshal([]op{
		{"replace", "/metadata/resourceVersion", d.ResourceVersion},
		{"replace", "/spec/template", tmpl},
		// add, not kubectl's replace: it also works when the Deployment has
		// no annotations at all.
		{"add", "/metadata/annotations", annotations},
	})
}

// undoAnnotations: the Deployment's controller-owned annotations, and the
// ReplicaSet's others (the change-cause etc. of that revision).
func undoAnnotations(deployment, replicaSet map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range deployment {
		if keepAnnotations[k] {
			out[k] = v
		}
	}
	for k, v := range replicaSet {
		if !keepAnnotations[k] {
			out[k] = v
		}
	}
	return out
}

func images(t *corev1.PodTemplateSpec) []string {
	out := make([]string, 0, len(t.Spec.Containers))
	for _, c := range t.Spec.Containers {
		out = append(out, c.Image)
	}
	return out
}
