package kube

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/amtriage/amtriage/internal/clip"
)

// RevisionAnnotation is the deployment controller's revision of a
// Deployment and of each of its ReplicaSets.
const RevisionAnnotation = "deployment.kubernetes.io/revision"

// Index names. Every key starts with the namespace, so one index serves a
// factory of one namespace and one of all namespaces alike.
const (
	// indexPodOwner: pods by controller owner, "namespace/Kind/name"
	// (ReplicaSet, StatefulSet, DaemonSet, Job…).
	indexPodOwner = "owner"
	// indexRSOwner: ReplicaSets by controller owner, "namespace/Deployment/name".
	indexRSOwner = "owner"
	// indexInvolved: Warning events by involved object, "namespace/Kind/name".
	indexInvolved = "involved"
)

func objectKey(namespace, kind, name string) string {
	return namespace + "/" + kind + "/" + name
}

func controllerKey(m *metav1.ObjectMeta) []string {
	ref := controllerOf(m)
	if ref == nil {
		return nil
	}
	return []string{objectKey(m.Namespace, ref.Kind, ref.Name)}
}

// controllerOf returns the controlling owner reference, or nil.
func controllerOf(m *metav1.ObjectMeta) *metav1.OwnerReference {
	for i := range m.OwnerReferences {
		if r := &m.OwnerReferences[i]; r.Controller != nil && *r.Controller {
			return r
		}
	}
	return nil
}

func podOwnerIndex(obj any) ([]string, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		return controllerKey(&p.ObjectMeta), nil
	}
	return nil, nil
}

func replicaSetOwnerIndex(obj any) ([]string, error) {
	if rs, ok := obj.(*appsv1.ReplicaSet); ok {
		return controllerKey(&rs.ObjectMeta), nil
	}
	return nil, nil
}

func eventInvolvedIndex(obj any) ([]string, error) {
	e, ok := obj.(*corev1.Event)
	if !ok || e.Type != corev1.EventTypeWarning {
		// Only Warning events are shown. The informer lists only those, but
		// a client that ignores field selectors (a fake) sends all.
		return nil, nil
	}
	ns := e.InvolvedObject.Namespace
	if ns == "" {
		ns = e.Namespace
	}
	return []string{objectKey(ns, e.InvolvedObject.Kind, e.InvolvedObject.Name)}, nil
}

// The transforms strip what a snapshot never reads before an object enters
// a cache: managed fields, last-applied annotations, volumes, env, probes,
// resources, IPs… A pod keeps its labels (selectors), controller reference,
// node, container names and images, and the state of its containers. They
// change objects in place (client-go ≥ 1.27 hands them over unshared) and
// are idempotent. Anything else passes through unchanged.

// maxMessage bounds the messages kept in the caches (termination messages
// can be 4 KiB; event messages are free text).
const maxMessage = 1024

func transformPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	slimMeta(&p.ObjectMeta, false)
	p.Spec = corev1.PodSpec{
		NodeName:       p.Spec.NodeName,
		Containers:     slimContainers(p.Spec.Containers),
		InitContainers: slimContainers(p.Spec.InitContainers),
	}
	st := &p.Status
	for i := range st.Conditions {
		c := &st.Conditions[i]
		*c = corev1.PodCondition{
			Type: c.Type, Status: c.Status, Reason: c.Reason,
			Message: clipKeep(c.Message, maxMessage), LastTransitionTime: c.LastTransitionTime,
		}
	}
	p.Status = corev1.PodStatus{
		Phase:                 st.Phase,
		Conditions:            st.Conditions,
		Reason:                st.Reason,
		Message:               clipKeep(st.Message, maxMessage),
		StartTime:             st.StartTime,
		InitContainerStatuses: slimStatuses(st.InitContainerStatuses),
		ContainerStatuses:     slimStatuses(st.ContainerStatuses),
	}
	return p, nil
}

func transformDeployment(obj any) (any, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return obj, nil
	}
	slimMeta(&d.ObjectMeta, true)
	d.Spec = appsv1.DeploymentSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Paused: d.Spec.Paused}
	for i := range d.Status.Conditions {
		d.Status.Conditions[i].Message = clipKeep(d.Status.Conditions[i].Message, maxMessage)
	}
	return d, nil
}

func transformReplicaSet(obj any) (any, error) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return obj, nil
	}
	slimMeta(&rs.ObjectMeta, true)
	rs.Spec = appsv1.ReplicaSetSpec{
		Replicas: rs.Spec.Replicas,
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: slimContainers(rs.Spec.Template.Spec.Containers),
		}},
	}
	rs.Status = appsv1.ReplicaSetStatus{
		Replicas:          rs.Status.Replicas,
		ReadyReplicas:     rs.Status.ReadyReplicas,
		AvailableReplicas: rs.Status.AvailableReplicas,
	}
	return rs, nil
}

func transformEvent(obj any) (any, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	slimMeta(&e.ObjectMeta, false)
	var series *corev1.EventSeries
	if e.Series != nil {
		series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	*e = corev1.Event{
		ObjectMeta: e.ObjectMeta,
		InvolvedObject: corev1.ObjectReference{
			Kind: e.InvolvedObject.Kind, Namespace: e.InvolvedObject.Namespace,
			Name: e.InvolvedObject.Name, UID: e.InvolvedObject.UID,
		},
		Reason:         e.Reason,
		Message:        clipKeep(e.Message, maxMessage),
		Type:           e.Type,
		Count:          e.Count,
		FirstTimestamp: e.FirstTimestamp,
		LastTimestamp:  e.LastTimestamp,
		EventTime:      e.EventTime,
		Series:         series,
	}
	return e, nil
}

// slimMeta keeps identity, creation/deletion time, labels, the controller
// reference and, with revision, the revision annotation.
func slimMeta(m *metav1.ObjectMeta, revision bool) {
	var annotations map[string]string
	if rev, ok := m.Annotations[RevisionAnnotation]; ok && revision {
		if len(m.Annotations) == 1 {
			annotations = m.Annotations
		} else {
			annotations = map[string]string{RevisionAnnotation: rev}
		}
	}
	var owners []metav1.OwnerReference
	if ref := controllerOf(m); ref != nil {
		owners = m.OwnerReferences[:1]
		owners[0] = metav1.OwnerReference{
			APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Controller: ref.Controller,
		}
		owners = owners[:1:1]
	}
	*m = metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            m.Labels,
		Annotations:       annotations,
		OwnerReferences:   owners,
	}
}

func slimContainers(cs []corev1.Container) []corev1.Container {
	for i := range cs {
		cs[i] = corev1.Container{Name: cs[i].Name, Image: cs[i].Image}
	}
	return cs
}

func slimStatuses(cs []corev1.ContainerStatus) []corev1.ContainerStatus {
	for i := range cs {
		c := &cs[i]
		*c = corev1.ContainerStatus{
			Name:                 c.Name,
			Image:                c.Image,
			Ready:                c.Ready,
			RestartCount:         c.RestartCount,
			State:                slimState(c.State),
			LastTerminationState: slimState(c.LastTerminationState),
		}
	}
	return cs
}

func slimState(s corev1.ContainerState) corev1.ContainerState {
	if w := s.Waiting; w != nil {
		w.Message = clipKeep(w.Message, maxMessage)
	}
	if t := s.Terminated; t != nil {
		s.Terminated = &corev1.ContainerStateTerminated{
			ExitCode: t.ExitCode, Signal: t.Signal, Reason: t.Reason,
			Message: clipKeep(t.Message, maxMessage), StartedAt: t.StartedAt, FinishedAt: t.FinishedAt,
		}
	}
	return s
}

// clipKeep clips s to at most n bytes on a rune boundary, copying the kept
// part so that the rest of a long string can be freed.
func clipKeep(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.Clone(clip.Prefix(s, n))
}
