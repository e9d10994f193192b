package kube

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/severity"
)

const (
	// maxEventPods caps the pods whose events a snapshot looks up: those
	// shown, the most broken first. Each lookup costs about 0.5 µs in a
	// cache of 50,000 events; the events of healthy pods beyond these are
	// resolved history that would crowd out the telling ones anyway.
	maxEventPods = diagnosis.MaxPods
	// eventClockSkew admits events stamped slightly after the evaluation
	// instant by a node or API server whose clock runs ahead of ours.
	eventClockSkew = time.Minute
)

// Snapshot reads the target's workload from the informer caches at the
// instant at; it makes no API call. What it cannot find is said in
// Partial, and what exists is still returned.
func (c *Cluster) Snapshot(t Target, at time.Time) *diagnosis.Snapshot {
	s := &diagnosis.Snapshot{Namespace: t.Namespace}
	if !c.Synced() {
		s.Partial = append(s.Partial, "kubernetes caches not synced yet ("+strings.Join(c.unsynced(), ", ")+"): the snapshot may be incomplete")
	}
	set := c.setFor(t.Namespace)
	if set == nil {
		s.Workload = t.workload()
		s.Partial = append(s.Partial, fmt.Sprintf("namespace %s is not watched (kubernetes.namespaces)", t.Namespace))
		return s
	}
	b := builders.Get().(*builder)
	defer b.release()
	b.set, b.s, b.ns = set, s, t.Namespace
	switch {
	case t.Deployment != "":
		b.deployment(t.Deployment)
	case t.Pod != "":
		b.pod(t.Pod)
	case t.Selector != "":
		b.selector(t.Selector)
	default:
		s.Partial = append(s.Partial, "no workload named: neither deployment, pod nor selector")
		return s
	}
	b.finish(at.Add(-c.opts.EventWindow), at.Add(eventClockSkew))
	return s
}

func (t Target) workload() string {
	switch {
	case t.Deployment != "":
		return "deployment/" + t.Deployment
	case t.Pod != "":
		return "pod/" + t.Pod
	default:
		return "pods " + t.Selector
	}
}

// builder gathers the objects of one snapshot. Builders are reused, which
// saves a snapshot most of its allocations.
type builder struct {
	set  *informerSet
	s    *diagnosis.Snapshot
	ns   string
	pods []*corev1.Pod
	// objects whose events are shown besides the pods', as event index
	// keys "namespace/Kind/name".
	objects []string
	// include is a pod that must be among the pods shown: the alert's.
	include string
	// scratch of finish
	states []podState
	order  []*podState
}

var builders = sync.Pool{New: func() any { return new(builder) }}

// maxScratch bounds the scratch a pooled builder keeps (a workload of
// thousands of pods does not pin its buffers).
const maxScratch = 1024

func (b *builder) release() {
	if cap(b.pods) > maxScratch {
		*b = builder{}
	} else {
		clear(b.pods)
		clear(b.objects)
		clear(b.states)
		clear(b.order)
		*b = builder{pods: b.pods[:0], objects: b.objects[:0], states: b.states[:0], order: b.order[:0]}
	}
	builders.Put(b)
}

func (b *builder) partial(format string, args ...any) {
	b.s.Partial = append(b.s.Partial, fmt.Sprintf(format, args...))
}

func (b *builder) deployment(name string) {
	b.s.Workload = "deployment/" + name
	b.objects = append(b.objects, objectKey(b.ns, "Deployment", name))
	var dep *appsv1.Deployment
	if obj, ok, _ := b.set.deploys.GetIndexer().GetByKey(b.ns + "/" + name); ok {
		dep, _ = obj.(*appsv1.Deployment)
	}
	if dep != nil {
		b.s.Deployment = reduceDeployment(dep)
	}
	objs, _ := b.set.rss.GetIndexer().ByIndex(indexRSOwner, objectKey(b.ns, "Deployment", name))
	rss := make([]*appsv1.ReplicaSet, 0, len(objs))
	for _, o := range objs {
		rs, ok := o.(*appsv1.ReplicaSet)
		if !ok {
			continue
		}
		if ref := controllerOf(&rs.ObjectMeta); dep != nil && (ref == nil || ref.UID != dep.UID) {
			continue // an orphan of an earlier deployment of that name
		}
		rss = append(rss, rs)
	}
	switch {
	case dep == nil && len(rss) == 0:
		b.partial("deployment %s/%s not found", b.ns, name)
		return
	case dep == nil:
		b.partial("deployment %s/%s not found; showing its ReplicaSets", b.ns, name)
	}
	sortReplicaSets(rss)
	b.s.Rollouts = rollouts(rss)
	for i, rs := range rss {
		// A deployment keeps up to 10 old ReplicaSets scaled to zero:
		// they have no pods, and only the revisions shown have events worth
		// a lookup.
		active := rs.Spec.Replicas == nil || *rs.Spec.Replicas > 0 || rs.Status.Replicas > 0
		if active || i < diagnosis.MaxRollouts {
			b.objects = append(b.objects, objectKey(b.ns, "ReplicaSet", rs.Name))
		}
		if active {
			b.ownedPods("ReplicaSet", rs.Name, rs.UID)
		}
	}
	if len(rss) == 0 && dep.Spec.Selector != nil {
		// No ReplicaSet cached (yet): the deployment's selector finds its pods.
		if sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector); err == nil {
			b.selectPods(sel)
		}
	}
}

// ownedPods adds the pods controlled by namespace/kind/name (with uid, when
// known).
func (b *builder) ownedPods(kind, name string, uid types.UID) {
	objs, _ := b.set.pods.GetIndexer().ByIndex(indexPodOwner, objectKey(b.ns, kind, name))
	b.pods = slices.Grow(b.pods, len(objs))
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		if ref := controllerOf(&p.ObjectMeta); uid != "" && (ref == nil || ref.UID != uid) {
			continue
		}
		b.pods = append(b.pods, p)
	}
}

func (b *builder) pod(name string) {
	b.include = name
	obj, ok, _ := b.set.pods.GetIndexer().GetByKey(b.ns + "/" + name)
	p, _ := obj.(*corev1.Pod)
	if !ok || p == nil {
		b.s.Workload = "pod/" + name
		b.partial("pod %s/%s not found", b.ns, name)
		// Its events may still tell what happened to it.
		b.objects = append(b.objects, objectKey(b.ns, "Pod", name))
		return
	}
	ref := controllerOf(&p.ObjectMeta)
	if ref == nil {
		b.s.Workload = "pod/" + name
		b.pods = append(b.pods, p)
		return
	}
	if ref.Kind == "ReplicaSet" {
		if obj, ok, _ := b.set.rss.GetIndexer().GetByKey(b.ns + "/" + ref.Name); ok {
			if rs, _ := obj.(*appsv1.ReplicaSet); rs != nil {
				if dref := controllerOf(&rs.ObjectMeta); dref != nil && dref.Kind == "Deployment" {
					b.deployment(dref.Name)
					return
				}
			}
		}
	}
	// A StatefulSet, DaemonSet, Job, a bare ReplicaSet…: the pods of the
	// same controller.
	b.s.Workload = strings.ToLower(ref.Kind) + "/" + ref.Name
	b.objects = append(b.objects, objectKey(b.ns, ref.Kind, ref.Name))
	b.ownedPods(ref.Kind, ref.Name, ref.UID)
}

func (b *builder) selector(selector string) {
	b.s.Workload = "pods " + selector
	sel, err := labels.Parse(selector)
	if err != nil {
		b.partial("invalid selector %q: %v", selector, err)
		return
	}
	b.selectPods(sel)
}

// selectPods adds the namespace's pods that sel matches: the cost of a
// selector is the namespace's pod count, not the cluster's.
func (b *builder) selectPods(sel labels.Selector) {
	objs, _ := b.set.pods.GetIndexer().ByIndex(cache.NamespaceIndex, b.ns)
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok && sel.Matches(labels.Set(p.Labels)) {
			b.pods = append(b.pods, p)
		}
	}
}

// finish reduces and sorts the pods and gathers the Warning events in
// (from, to].
func (b *builder) finish(from, to time.Time) {
	// Sorted through pointers: cheaper to move than the states.
	b.states = slices.Grow(b.states[:0], len(b.pods))[:len(b.pods)]
	b.order = slices.Grow(b.order[:0], len(b.pods))[:len(b.pods)]
	states, order := b.states, b.order
	for i, p := range b.pods {
		states[i] = assess(p)
		order[i] = &states[i]
	}
	slices.SortFunc(order, comparePods)
	b.s.PodsTotal = len(states)

	n := min(len(order), diagnosis.MaxPods)
	if b.include != "" && n < len(order) {
		// The alert's pod is shown even when others are more broken.
		if i := slices.IndexFunc(order, func(s *podState) bool { return s.name == b.include }); i >= n {
			order[n-1] = order[i]
		}
	}

	top := eventTop{from: from, to: to}
	events := b.set.events.GetIndexer()
	for _, obj := range b.objects {
		top.addAll(events, obj)
	}
	podKey := b.ns + "/Pod/"
	for _, st := range order[:min(len(order), maxEventPods)] {
		top.addAll(events, podKey+st.name)
	}
	b.s.Events = top.result()

	if n > 0 {
		b.s.Pods = make([]diagnosis.Pod, n)
		for i, st := range order[:n] {
			b.s.Pods[i] = st.reduce()
		}
	}
}

func reduceDeployment(d *appsv1.Deployment) *diagnosis.Deployment {
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	return &diagnosis.Deployment{
		Name:       d.Name,
		Desired:    desired,
		Updated:    d.Status.UpdatedReplicas,
		Ready:      d.Status.ReadyReplicas,
		Available:  d.Status.AvailableReplicas,
		Generation: d.Generation,
		Revision:   revision(d.Annotations),
	}
}

func revision(annotations map[string]string) int64 {
	n, err := strconv.ParseInt(annotations[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// sortReplicaSets orders ReplicaSets newest revision first (then newest,
// then by name).
func sortReplicaSets(rss []*appsv1.ReplicaSet) {
	slices.SortFunc(rss, func(a, b *appsv1.ReplicaSet) int {
		if c := cmp.Compare(revision(b.Annotations), revision(a.Annotations)); c != 0 {
			return c
		}
		if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// rollouts lists the first MaxRollouts of ReplicaSets sorted by
// sortReplicaSets, each with the image change from the revision before it.
func rollouts(rss []*appsv1.ReplicaSet) []diagnosis.Rollout {
	if len(rss) == 0 {
		return nil
	}
	out := make([]diagnosis.Rollout, min(len(rss), diagnosis.MaxRollouts))
	for i := range out {
		rs := rss[i]
		replicas := int32(1)
		if rs.Spec.Replicas != nil {
			replicas = *rs.Spec.Replicas
		}
		out[i] = diagnosis.Rollout{
			Revision:   revision(rs.Annotations),
			ReplicaSet: rs.Name,
			Created:    rs.CreationTimestamp.Time,
			Images:     images(rs.Spec.Template.Spec.Containers),
			Replicas:   replicas,
		}
		if i+1 < len(rss) {
			out[i].Change = imageChange(rss[i+1].Spec.Template.Spec.Containers, rs.Spec.Template.Spec.Containers)
		}
	}
	return out
}

func images(cs []corev1.Container) []string {
	out := make([]string, len(cs))
	for i := range cs {
		out[i] = cs[i].Image
	}
	return out
}

// imageChange describes the image changes from old to new containers:
// "api: shop/api:1.4.2 → shop/api:1.5.0", "sidecar: added envoy:1.30",
// joined by ", "; empty when no image changed.
func imageChange(old, new []corev1.Container) string {
	var parts []string
	for _, n := range new {
		i := slices.IndexFunc(old, func(o corev1.Container) bool { return o.Name == n.Name })
		switch {
		case i < 0:
			parts = append(parts, n.Name+": added "+n.Image)
		case old[i].Image != n.Image:
			parts = append(parts, n.Name+": "+old[i].Image+" → "+n.Image)
		}
	}
	for _, o := range old {
		if !slices.ContainsFunc(new, func(n corev1.Container) bool { return n.Name == o.Name }) {
			parts = append(parts, o.Name+": removed "+o.Image)
		}
	}
	return strings.Join(parts, ", ")
}

// podState is what sorting needs of a pod: the full diagnosis.Pod is built
// only for the pods shown.
type podState struct {
	p        *corev1.Pod
	name     string // p.Name, here for the sort
	why      reason
	ready    bool
	restarts int32
}

// comparePods sorts the most broken first: the most telling reason, not
// ready, most restarts, then by name.
func comparePods(a, b *podState) int {
	if c := cmp.Compare(b.why.score, a.why.score); c != 0 {
		return c
	}
	if a.ready != b.ready {
		if !a.ready {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(b.restarts, a.restarts); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// Weights of a pod's possible reasons: the highest one is its Reason.
const (
	scoreBenignWaiting = 10 // ContainerCreating, PodInitializing: shown when nothing else is
	scoreUnschedulable = 50
	scoreExited        = 60 // a container exited non-zero and has not restarted yet
	scoreOtherWaiting  = 70
	scoreOOMKilled     = 80
	scorePodReason     = 85 // Evicted, NodeLost, OutOfcpu…
)

// waitingScores ranks the waiting reasons that explain a failure.
var waitingScores = map[string]int{
	"CrashLoopBackOff":           100,
	"ImagePullBackOff":           95,
	"ErrImagePull":               94,
	"CreateContainerConfigError": 93,
	"CreateContainerError":       92,
	"InvalidImageName":           91,
	"ErrImageNeverPull":          90,
	"RunContainerError":          89,
	"PreStartHookError":          88,
	"PostStartHookError":         87,
	"ContainerCreating":          scoreBenignWaiting,
	"PodInitializing":            scoreBenignWaiting,
}

// logReasons are the reasons after which a container has logs to read.
var logReasons = map[string]bool{
	"CrashLoopBackOff": true, "OOMKilled": true, "Error": true, "RunContainerError": true,
	"PostStartHookError": true,
}

type reason struct {
	score                      int
	reason, message, container string
}

func (r *reason) offer(score int, why, message, container string) {
	if score > r.score {
		*r = reason{score, why, message, container}
	}
}

// reducePod reduces a pod to what explains a failure; see diagnosis.Pod.
func reducePod(p *corev1.Pod) diagnosis.Pod {
	st := assess(p)
	return st.reduce()
}

// assess finds a pod's most telling reason, readiness and restarts.
func assess(p *corev1.Pod) podState {
	st := podState{p: p, name: p.Name}
	best := &st.why
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		switch {
		case c.Type == corev1.PodReady:
			st.ready = c.Status == corev1.ConditionTrue
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && p.Status.Phase == corev1.PodPending:
			best.offer(scoreUnschedulable, cmp.Or(c.Reason, corev1.PodReasonUnschedulable), c.Message, "")
		}
	}
	if p.Status.Reason != "" {
		best.offer(scorePodReason, p.Status.Reason, p.Status.Message, "")
	}
	for _, list := range [2][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			c := &list[i]
			st.restarts += c.RestartCount
			if w := c.State.Waiting; w != nil && w.Reason != "" {
				best.offer(waitingScore(w.Reason), w.Reason, w.Message, c.Name)
			}
			if t := c.State.Terminated; t != nil {
				switch {
				case t.Reason == "OOMKilled":
					best.offer(scoreOOMKilled, t.Reason, t.Message, c.Name)
				case t.ExitCode != 0:
					best.offer(scoreExited, cmp.Or(t.Reason, "Error"), t.Message, c.Name)
				}
			}
			if t := c.LastTerminationState.Terminated; t != nil && t.Reason == "OOMKilled" {
				best.offer(scoreOOMKilled, t.Reason, t.Message, c.Name)
			}
		}
	}
	return st
}

func waitingScore(reason string) int {
	if s, ok := waitingScores[reason]; ok {
		return s
	}
	return scoreOtherWaiting
}

// reduce builds the diagnosis.Pod.
func (st *podState) reduce() diagnosis.Pod {
	p := st.p
	d := diagnosis.Pod{
		Name:      p.Name,
		Phase:     string(p.Status.Phase),
		Ready:     st.ready,
		Restarts:  st.restarts,
		Reason:    st.why.reason,
		Message:   st.why.message,
		Container: st.why.container,
		Node:      p.Spec.NodeName,
		Created:   p.CreationTimestamp.Time,
	}
	if ref := controllerOf(&p.ObjectMeta); ref != nil && ref.Kind == "ReplicaSet" {
		d.ReplicaSet = ref.Name
	}
	if c := lastTerminated(p, st.why.container); c != nil {
		t := c.LastTerminationState.Terminated
		d.LastTerminated = cmp.Or(t.Reason, "Terminated") + " (exit " + strconv.Itoa(int(t.ExitCode)) + ")"
		if d.Container == "" {
			d.Container = c.Name
		}
	}
	return d
}

// lastTerminated returns the container whose previous termination tells
// most: the named one if it has one, else the one restarted most.
func lastTerminated(p *corev1.Pod, name string) *corev1.ContainerStatus {
	var out *corev1.ContainerStatus
	for _, list := range [2][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			c := &list[i]
			if c.LastTerminationState.Terminated == nil {
				continue
			}
			if c.Name == name {
				return c
			}
			if out == nil || c.RestartCount > out.RestartCount {
				out = c
			}
		}
	}
	return out
}

// eventTop keeps the newest MaxEvents Warning events in (from, to].
type eventTop struct {
	from, to time.Time
	items    [diagnosis.MaxEvents]timedEvent
	n        int
}

type timedEvent struct {
	at time.Time
	e  *corev1.Event
}

func (t *eventTop) addAll(idx cache.Indexer, key string) {
	objs, _ := idx.ByIndex(indexInvolved, key)
	for _, o := range objs {
		e, ok := o.(*corev1.Event)
		if !ok || e.Type != corev1.EventTypeWarning {
			continue
		}
		at := eventTime(e)
		if !at.After(t.from) || at.After(t.to) {
			continue
		}
		t.add(timedEvent{at, e})
	}
}

// add inserts into the sorted array of at most MaxEvents.
func (t *eventTop) add(ev timedEvent) {
	i := t.n
	for i > 0 && newer(ev, t.items[i-1]) {
		i--
	}
	if i >= len(t.items) {
		return
	}
	if t.n < len(t.items) {
		t.n++
	}
	copy(t.items[i+1:t.n], t.items[i:t.n-1])
	t.items[i] = ev
}

// newer orders events newest first, then by object and reason for a
// stable order among events of the same second.
func newer(a, b timedEvent) bool {
	if !a.at.Equal(b.at) {
		return a.at.After(b.at)
	}
	x, y := &a.e.InvolvedObject, &b.e.InvolvedObject
	if x.Kind != y.Kind {
		return x.Kind < y.Kind
	}
	if x.Name != y.Name {
		return x.Name < y.Name
	}
	return a.e.Reason < b.e.Reason
}

func (t *eventTop) result() []diagnosis.Event {
	if t.n == 0 {
		return nil
	}
	out := make([]diagnosis.Event, t.n)
	for i, ev := range t.items[:t.n] {
		e := ev.e
		out[i] = diagnosis.Event{
			Time:    ev.at,
			Object:  e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name,
			Reason:  e.Reason,
			Message: e.Message,
			Count:   e.Count,
		}
		if out[i].Count == 0 && e.Series != nil {
			out[i].Count = e.Series.Count
		}
	}
	return out
}

// eventTime is when an event last happened: lastTimestamp, else the
// series' last observation, else eventTime, else firstTimestamp, else its
// creation.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// Reachable is the Kubernetes view of the reachable signal: a deployment
// that wants pods and has none available cannot serve anyone. Available
// pods do not prove the reverse (the Service may select nothing, the
// ingress may be broken, the pods may answer 500), so otherwise the signal
// stays unknown.
func Reachable(s *diagnosis.Snapshot) severity.Bool {
	b := severity.Bool{Source: "kubernetes"}
	switch {
	case s == nil || s.Deployment == nil:
		b.Note = "kubernetes: no deployment found"
	case s.Deployment.Desired > 0 && s.Deployment.Available == 0:
		b.Known, b.Value = true, false
		b.Note = fmt.Sprintf("0/%d pods available", s.Deployment.Desired)
	case s.Deployment.Desired == 0:
		b.Note = "kubernetes: deployment scaled to 0"
	default:
		b.Note = fmt.Sprintf("kubernetes: %d/%d pods available, which does not prove users can reach it",
			s.Deployment.Available, s.Deployment.Desired)
	}
	return b
}
