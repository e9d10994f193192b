// Package kubetest starts a real kube-apiserver and etcd (envtest) for
// integration tests.
//
// The binaries are built from source by hack/k8sbins/build.sh (kube-apiserver
// v1.37.2, etcd v3.7.0) into a cache directory; nothing is downloaded at test
// time. Without them the tests are skipped, unless CI=true, in which case they
// fail.
//
// There are no controllers, scheduler or kubelet: Deployments create no
// ReplicaSets, pods never run and nothing is garbage-collected. Tests create
// every object themselves and set status with UpdateStatus.
package kubetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/amtriage/amtriage/internal/testproc"
)

// Versions built by hack/k8sbins/build.sh; keep in step with it.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.7.0"
)

const (
	startTimeout = 60 * time.Second // generous: make test runs packages in parallel under -race
	stopTimeout  = 20 * time.Second
	logTailBytes = 4 << 10
)

// Env is a running control plane owned by one test.
type Env struct {
	// Config authenticates as envtest's admin user (system:masters).
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// Kubeconfig is the path of a kubeconfig file for a separate
	// system:masters user, for running another process (e.g. the daemon)
	// against this API server.
	Kubeconfig string
}

// AssetsDir returns the directory expected to hold kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS, else $AMTRIAGE_KUBE_ASSETS, else the default output
// directory of hack/k8sbins/build.sh.
func AssetsDir() string {
	for _, env := range []string{"KUBEBUILDER_ASSETS", "AMTRIAGE_KUBE_ASSETS"} {
		if dir := os.Getenv(env); dir != "" {
			return dir
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "amtriage", "kube-assets", KubeVersion+"-etcd-"+EtcdVersion)
}

// binaries returns the paths of kube-apiserver and etcd in AssetsDir. If
// either is missing the test is skipped, or fails when CI is true.
func binaries(tb testing.TB) (apiserver, etcd string) {
	tb.Helper()
	dir := AssetsDir()
	apiserver, etcd = filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "etcd")
	if isExecutable(apiserver) && isExecutable(etcd) {
		return apiserver, etcd
	}
	testproc.Missing(tb,
		fmt.Sprintf("kube-apiserver/etcd not found in %s: .ci/run must build them via hack/k8sbins/build.sh", dir),
		fmt.Sprintf("kube-apiserver/etcd not found in %s: run hack/k8sbins/build.sh (cold build ~5 min)", dir))
	return "", ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// silenceLogs stops controller-runtime from printing a "log.SetLogger(...)
// was never called" stack trace in test binaries that run longer than 30 s.
var silenceLogs sync.Once

// Start starts etcd and kube-apiserver on 127.0.0.1 (about 3 s) and stops
// them when the test ends (about 1 s).
func Start(tb testing.TB) *Env {
	tb.Helper()
	apiserverPath, etcdPath := binaries(tb)
	silenceLogs.Do(func() { ctrllog.SetLogger(logr.Discard()) })

	// Process output goes to files, shown (tail only) when the test fails.
	logDir := tb.TempDir()
	apiLog, etcdLog := createLog(tb, logDir, "kube-apiserver.log"), createLog(tb, logDir, "etcd.log")

	api := &envtest.APIServer{Path: apiserverPath, Out: apiLog, Err: apiLog}
	// Without these the API server advertises the machine's external address
	// and reconciles the kubernetes Service endpoints to it.
	api.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	env := &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			APIServer: api,
			Etcd:      &envtest.Etcd{Path: etcdPath, Out: etcdLog, Err: etcdLog},
		},
		BinaryAssetsDirectory:    filepath.Dir(apiserverPath),
		UseExistingCluster:       new(false), // ignore USE_EXISTING_CLUSTER: never touch a real cluster
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  stopTimeout,
	}
	// Registered before Start: a failed start may leave etcd running.
	tb.Cleanup(func() {
		begin := time.Now()
		if err := env.Stop(); err != nil {
			tb.Errorf("kubetest: stop control plane: %v", err)
		}
		tb.Logf("kubetest: control plane stopped in %s", time.Since(begin).Round(time.Millisecond))
		if tb.Failed() {
			for _, f := range []*os.File{apiLog, etcdLog} {
				tb.Logf("kubetest: tail of %s:\n%s", f.Name(), testproc.LogTail(f.Name(), logTailBytes))
			}
		}
	})

	begin := time.Now()
	cfg, err := env.Start()
	if err != nil {
		tb.Fatalf("kubetest: start control plane (%s, %s): %v", apiserverPath, etcdPath, err)
	}
	tb.Logf("kubetest: control plane at %s started in %s", cfg.Host, time.Since(begin).Round(time.Millisecond))

	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatalf("kubetest: clientset: %v", err)
	}
	return &Env{Config: cfg, Client: client, Kubeconfig: writeKubeconfig(tb, env)}
}

// writeKubeconfig adds a system:masters user (cluster-admin) and writes a
// kubeconfig for it into the test's temporary directory.
func writeKubeconfig(tb testing.TB, env *envtest.Environment) string {
	tb.Helper()
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "kubetest-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		tb.Fatalf("kubetest: add user: %v", err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		tb.Fatalf("kubetest: kubeconfig: %v", err)
	}
	path := filepath.Join(tb.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatalf("kubetest: write kubeconfig: %v", err)
	}
	return path
}

// NewNamespace creates a namespace named prefix-XXXXX (random suffix) and
// returns its name. It is not deleted: without controllers a deleted
// namespace stays Terminating, and the whole control plane goes away with
// the test anyway.
func (e *Env) NewNamespace(tb testing.TB, prefix string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("kubetest: create namespace %s-*: %v", prefix, err)
	}
	return ns.Name
}

func createLog(tb testing.TB, dir, name string) *os.File {
	tb.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	tb.Cleanup(func() { f.Close() }) // runs after the processes are stopped
	return f
}
