package kubernetes_test

import (
	"context"
	"slices"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/amtriage/amtriage/actions/rollback"
	"github.com/amtriage/amtriage/actions/rollback/rollbacktest"
	"github.com/amtriage/amtriage/internal/kubetest"
)

const (
	serviceAccount = "system:serviceaccount:amtriage:amtriage"
	apiV1          = "registry.example/shop/api:1.4.2"
	apiV2          = "registry.example/shop/api:1.5.0"
)

type access struct {
	verb, group, resource, sub, ns string
	allowed                        bool
}

// TestRollbackRBACIsOptIn: with rbac.yaml alone the ServiceAccount cannot
// patch a Deployment (and a rollback through it is Forbidden); with
// rollback-rbac.yaml it can get and patch Deployments in the profiles'
// namespace, and nothing more.
func TestRollbackRBACIsOptIn(t *testing.T) {
	env := kubetest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"shop", "other"} {
		if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rollbacktest.Deploy(t, env.Client, ns, "api", apiV1, apiV2)
	}
	objs := apply(t, env.Config, "amtriage.yaml")
	apply(t, env.Config, "rbac.yaml")
	sa := impersonate(t, env.Config, serviceAccount)
	// The authorizer sees new bindings a moment after they are created.
	waitAllowed(t, sa, access{verb: "list", resource: "pods", ns: "shop"})

	// Default RBAC: read-only.
	checkReviews(t, sa, []access{
		{"get", "apps", "deployments", "", "shop", true},
		{"list", "apps", "replicasets", "", "shop", true},
		{"patch", "apps", "deployments", "", "shop", false},
		{"update", "apps", "deployments", "", "shop", false},
	})
	_, err := rollback.Undo(ctx, sa, "shop", "api", 1, 2)
	if !apierrors.IsForbidden(err) {
		t.Errorf("rollback without the opt-in Role: want Forbidden, got %v", err)
	}
	checkImage(t, env.Client, "shop", apiV2)

	// Opt in.
	rbac := apply(t, env.Config, "rollback-rbac.yaml")
	waitAllowed(t, sa, access{verb: "patch", group: "apps", resource: "deployments", ns: "shop"})
	cases := []access{
		{"get", "apps", "deployments", "", "shop", true},
		{"patch", "apps", "deployments", "", "shop", true},
		{"list", "apps", "replicasets", "", "shop", true}, // from rbac.yaml, which the rollback needs too
		{"patch", "apps", "deployments", "", "other", false},
		{"get", "apps", "deployments", "", "other", false},
		{"update", "apps", "deployments", "", "shop", false},
		{"patch", "apps", "deployments", "scale", "shop", false},
		{"update", "apps", "deployments", "scale", "shop", false},
		{"patch", "apps", "deployments", "status", "shop", false},
		{"patch", "apps", "replicasets", "", "shop", false},
		{"patch", "", "pods", "", "shop", false},
		{"create", "", "pods", "exec", "shop", false},
		{"create", "", "pods", "eviction", "shop", false},
		{"get", "", "secrets", "", "shop", false},
		{"patch", "apps", "deployments", "", "amtriage", false},
	}
	// Nothing created or deleted, anywhere it is bound or not.
	for _, ns := range []string{"shop", "other", "amtriage"} {
		for _, r := range []struct{ group, resource string }{
			{"apps", "deployments"}, {"apps", "replicasets"}, {"", "pods"}, {"", "services"},
			{"", "configmaps"}, {"", "secrets"}, {"rbac.authorization.k8s.io", "roles"},
			{"rbac.authorization.k8s.io", "rolebindings"},
		} {
			for _, verb := range []string{"create", "delete", "deletecollection"} {
				cases = append(cases, access{verb, r.group, r.resource, "", ns, false})
			}
		}
	}
	for _, verb := range []string{"create", "delete", "patch"} {
		cases = append(cases, access{verb, "", "namespaces", "", "", false})
	}
	checkReviews(t, sa, cases)

	// And for real: the ServiceAccount rolls back in shop, not in other.
	res, err := rollback.Undo(ctx, sa, "shop", "api", 1, 2)
	if err != nil {
		t.Fatalf("rollback with the opt-in Role: %v", err)
	}
	if res.ToRevision != 1 || !slices.Equal(res.ToImages, []string{apiV1}) {
		t.Errorf("result %+v", res)
	}
	checkImage(t, env.Client, "shop", apiV1)
	if _, err := rollback.Undo(ctx, sa, "other", "api", 1, 2); !apierrors.IsForbidden(err) {
		t.Errorf("rollback in a namespace without the Role: want Forbidden, got %v", err)
	}
	checkImage(t, env.Client, "other", apiV2)

	// The Role is bound in exactly the namespaces the shipped profiles name.
	loaded, _ := loadConfigMap(t, objs)
	var profiles, bound []string
	for _, s := range loaded.Services {
		if !slices.Contains(profiles, s.Namespace) {
			profiles = append(profiles, s.Namespace)
		}
	}
	for _, o := range rbac {
		if o.GetKind() == "RoleBinding" {
			bound = append(bound, o.GetNamespace())
		}
	}
	slices.Sort(profiles)
	slices.Sort(bound)
	if !slices.Equal(profiles, bound) {
		t.Errorf("rollback-rbac.yaml binds in %v, the profiles name %v", bound, profiles)
	}
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

func review(t *testing.T, client kubernetes.Interface, a access) bool {
	t.Helper()
	r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub, Namespace: a.ns}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("access review: %v", err)
	}
	return r.Status.Allowed
}

// waitAllowed waits until a grant just created is visible to the
// authorizer (its informers lag the API), failing after 10 s.
func waitAllowed(t *testing.T, client kubernetes.Interface, a access) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !review(t, client, a); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s %s/%s in %s never allowed", a.verb, a.group, a.resource, a.ns)
		}
	}
}

func checkReviews(t *testing.T, client kubernetes.Interface, cases []access) {
	t.Helper()
	for _, c := range cases {
		if got := review(t, client, c); got != c.allowed {
			t.Errorf("%s %s/%s %s in %q: allowed=%v, want %v", c.verb, c.group, c.resource, c.sub, c.ns, got, c.allowed)
		}
	}
}

func checkImage(t *testing.T, client kubernetes.Interface, ns, want string) {
	t.Helper()
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != want {
		t.Errorf("deployment %s/api runs %s, want %s", ns, got, want)
	}
}
