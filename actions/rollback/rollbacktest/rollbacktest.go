// Package rollbacktest writes a Deployment's rollout history into an API
// server as the deployment controller would have left it, for tests on
// internal/kubetest (which runs no controllers).
package rollbacktest

import (
	"context"
	"fmt"
	"hash/fnv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// RevisionAnnotation is the deployment controller's revision annotation.
const RevisionAnnotation = "deployment.kubernetes.io/revision"

// ChangeCause is the annotation naming why each revision was made; the
// controller copies it from the Deployment to each ReplicaSet, and a
// rollback copies it back.
const ChangeCause = "kubernetes.io/change-cause"

// LastApplied stands in for kubectl apply's annotation, which a rollback
// keeps as it is on the Deployment.
const LastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Deploy creates Deployment name in ns at revision len(images), and one
// ReplicaSet per revision (revision i+1 runs images[i] in container "app"),
// each as the controller makes it: the Deployment's template plus a
// pod-template-hash label, controlled by the Deployment, annotated with its
// revision and change-cause. It returns the Deployment and the ReplicaSets,
// oldest first.
func Deploy(tb testing.TB, client kubernetes.Interface, ns, name string, images ...string) (*appsv1.Deployment, []*appsv1.ReplicaSet) {
	tb.Helper()
	if len(images) == 0 {
		tb.Fatal("rollbacktest: Deploy needs at least one image")
	}
	ctx := context.Background()
	rev := len(images)
	labels := map[string]string{"app": name}
	d, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{
			RevisionAnnotation: fmt.Sprint(rev),
			ChangeCause:        cause(images[rev-1]),
			LastApplied:        `{"kind":"Deployment"}`,
		}},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: Template(name, images[rev-1]),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("rollbacktest: create deployment %s/%s: %v", ns, name, err)
	}
	var rss []*appsv1.ReplicaSet
	for i, image := range images {
		replicas := int32(0)
		if i == rev-1 {
			replicas = 3
		}
		rss = append(rss, ReplicaSet(tb, client, d, i+1, image, replicas))
	}
	return d, rss
}

// Template is the pod template of revision image of Deployment name.
func Template(name, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

// ReplicaSet creates d's ReplicaSet of revision rev: d's template with its
// first container running image.
func ReplicaSet(tb testing.TB, client kubernetes.Interface, d *appsv1.Deployment, rev int, image string, replicas int32) *appsv1.ReplicaSet {
	tb.Helper()
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Spec.Containers[0].Image = image
	hash := podTemplateHash(image)
	tmpl.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	sel := d.Spec.Selector.DeepCopy()
	sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	rs, err := client.AppsV1().ReplicaSets(d.Namespace).Create(context.Background(), &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: tmpl.Labels,
			Annotations: map[string]string{
				RevisionAnnotation: fmt.Sprint(rev),
				ChangeCause:        cause(image),
				"deployment.kubernetes.io/desired-replicas": "3",
				"deployment.kubernetes.io/max-replicas":     "4",
			},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: new(replicas), Selector: sel, Template: tmpl},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("rollbacktest: create replicaset of %s/%s revision %d: %v", d.Namespace, d.Name, rev, err)
	}
	return rs
}

func cause(image string) string { return "deploy " + image }

// podTemplateHash is a stand-in for the controller's hash of the template:
// stable per image, a valid label value.
func podTemplateHash(image string) string {
	h := fnv.New32a()
	h.Write([]byte(image))
	return fmt.Sprintf("%08x", h.Sum32())
}
