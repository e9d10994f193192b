// Package kube is amtriage's view of a Kubernetes cluster: shared informer
// caches of pods, deployments, replicasets and Warning events, from which a
// diagnosis.Snapshot of one workload is read without any API call, plus the
// one pod-log read per incident. It also is the "kubernetes" signal source:
// desired > 0 and available = 0 means no user can reach the service.
//
// The informers need list and watch on pods, events, replicasets and
// deployments (apps), and get on pods/log, in the watched namespaces.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/amtriage/amtriage/triage/signal"
)

// Defaults of Options.
const (
	DefaultEventWindow = 15 * time.Minute
	DefaultLogTimeout  = 2 * time.Second
	DefaultLogBytes    = 64 << 10
)

// Options configure a Cluster. Zero values take the defaults.
type Options struct {
	// Namespaces the informers watch, one informer factory each; empty
	// watches all namespaces with one factory.
	Namespaces []string
	// EventWindow bounds the Warning events of a snapshot (default 15m).
	EventWindow time.Duration
	// LogTimeout and LogBytes bound the one pod-log read per incident
	// (defaults 2s and 64 KiB).
	LogTimeout time.Duration
	LogBytes   int64
	// Metrics times the log reads (source "kubernetes_logs"); nil: none.
	Metrics *signal.Metrics
	// Registerer gets amtriage_kubernetes_informer_synced{resource}; nil:
	// not registered.
	Registerer prometheus.Registerer
	Log        *slog.Logger
	Now        func() time.Time
}

// The resources the informers cache, as the gauge's resource label.
const (
	resPods        = "pods"
	resDeployments = "deployments"
	resReplicaSets = "replicasets"
	resEvents      = "events"
)

var resources = []string{resPods, resDeployments, resReplicaSets, resEvents}

// informerSet is the informers of one factory: one namespace, or all.
type informerSet struct {
	factory informers.SharedInformerFactory
	pods    cache.SharedIndexInformer
	deploys cache.SharedIndexInformer
	rss     cache.SharedIndexInformer
	events  cache.SharedIndexInformer
}

func (s *informerSet) informer(resource string) cache.SharedIndexInformer {
	switch resource {
	case resPods:
		return s.pods
	case resDeployments:
		return s.deploys
	case resReplicaSets:
		return s.rss
	default:
		return s.events
	}
}

// Cluster is the informer caches of one cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger
	now    func() time.Time

	all  *informerSet            // watching all namespaces, or nil
	byNS map[string]*informerSet // watching these namespaces
	sets []*informerSet

	started atomic.Bool
	synced  atomic.Bool // sticky: informers never unsync

	logs *logCache
}

// New creates the informers (not started: see Start). The client is used
// for list/watch and for pod logs only.
func New(client kubernetes.Interface, o Options) *Cluster {
	if o.EventWindow <= 0 {
		o.EventWindow = DefaultEventWindow
	}
	if o.LogTimeout <= 0 {
		o.LogTimeout = DefaultLogTimeout
	}
	if o.LogBytes <= 0 {
		o.LogBytes = DefaultLogBytes
	}
	c := &Cluster{
		client: client,
		opts:   o,
		log:    o.Log,
		now:    o.Now,
		logs:   newLogCache(logCacheSize),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	namespaces := slices.Compact(slices.Sorted(slices.Values(o.Namespaces)))
	namespaces = slices.DeleteFunc(namespaces, func(ns string) bool { return ns == "" })
	if len(namespaces) == 0 {
		c.all = c.newInformerSet(metav1.NamespaceAll)
		c.sets = []*informerSet{c.all}
	} else {
		c.byNS = make(map[string]*informerSet, len(namespaces))
		for _, ns := range namespaces {
			s := c.newInformerSet(ns)
			c.byNS[ns] = s
			c.sets = append(c.sets, s)
		}
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(&syncCollector{c: c}); err != nil {
			c.log.Warn("kubernetes: informer sync gauge not registered", "err", err)
		}
	}
	return c
}

func (c *Cluster) newInformerSet(namespace string) *informerSet {
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(namespace))
	s := &informerSet{
		factory: f,
		pods:    f.Core().V1().Pods().Informer(),
		deploys: f.Apps().V1().Deployments().Informer(),
		rss:     f.Apps().V1().ReplicaSets().Informer(),
		// Only Warning events are ever shown: the server filters the rest
		// out, which keeps the largest cache of a busy cluster small.
		events: f.InformerFor(&corev1.Event{}, func(client kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
			return coreinformers.NewFilteredEventInformer(client, namespace, resync,
				cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
				func(o *metav1.ListOptions) {
					o.FieldSelector = fields.OneTermEqualSelector("type", corev1.EventTypeWarning).String()
				})
		}),
	}
	for _, x := range []struct {
		resource  string
		informer  cache.SharedIndexInformer
		transform cache.TransformFunc
		indexers  cache.Indexers
	}{
		{resPods, s.pods, transformPod, cache.Indexers{indexPodOwner: podOwnerIndex}},
		{resDeployments, s.deploys, transformDeployment, nil},
		{resReplicaSets, s.rss, transformReplicaSet, cache.Indexers{indexRSOwner: replicaSetOwnerIndex}},
		{resEvents, s.events, transformEvent, cache.Indexers{indexInvolved: eventInvolvedIndex}},
	} {
		// These fail only once an informer has started; it has not.
		if err := x.informer.SetTransform(x.transform); err != nil {
			c.log.Error("kubernetes: informer transform", "resource", x.resource, "err", err)
		}
		if x.indexers != nil {
			if err := x.informer.AddIndexers(x.indexers); err != nil {
				c.log.Error("kubernetes: informer indexers", "resource", x.resource, "err", err)
			}
		}
		resource := x.resource
		// Watch failures (RBAC, an unreachable API server) go to our log,
		// not klog's; the reflector retries with backoff.
		_ = x.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			switch {
			case ctx.Err() != nil || errors.Is(err, io.EOF):
				// stopping, or a watch closed normally
			case apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, io.ErrUnexpectedEOF):
				c.log.Debug("kubernetes: watch closed", "resource", resource, "namespace", namespace, "err", err)
			default:
				c.log.Warn("kubernetes: watch failed", "resource", resource, "namespace", namespace, "err", err)
			}
		})
	}
	return s
}

// NewClientFromConfig returns a clientset for the kubeconfig file at path,
// or for the pod's service account when path is empty (in-cluster).
func NewClientFromConfig(kubeconfigPath string) (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfigPath == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes config: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	// Lists and watches are a handful of requests at start; the only steady
	// traffic is one log read per incident. Generous enough for a storm of
	// incidents, well under the API server's fairness limits.
	cfg.QPS = 20
	cfg.Burst = 40
	cfg.UserAgent = "amtriage"
	// Protobuf halves decoding cost and memory of large lists; every type
	// read here is a built-in type that supports it.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
}

// Start starts the informers; they run until ctx is done. It does not
// wait for them to sync (see WaitForSync). Calling it again does nothing.
func (c *Cluster) Start(ctx context.Context) {
	if !c.started.CompareAndSwap(false, true) {
		return
	}
	for _, s := range c.sets {
		s.factory.StartWithContext(ctx)
	}
	start := time.Now()
	go func() {
		if err := c.WaitForSync(ctx); err != nil {
			return // stopped before: nothing worth saying
		}
		c.log.Info("kubernetes: informer caches synced", "namespaces", c.namespaces(),
			"took", time.Since(start).Round(time.Millisecond))
	}()
}

// namespaces describes what the informers watch, for logs.
func (c *Cluster) namespaces() string {
	if c.all != nil {
		return "all"
	}
	return strings.Join(slices.Sorted(maps.Keys(c.byNS)), ",")
}

// Shutdown waits for the informers' goroutines to end after the context
// given to Start is done.
func (c *Cluster) Shutdown() {
	for _, s := range c.sets {
		s.factory.Shutdown()
	}
}

// Synced reports whether every informer has completed its initial list.
func (c *Cluster) Synced() bool {
	if c.synced.Load() {
		return true
	}
	if !c.started.Load() {
		return false
	}
	for _, s := range c.sets {
		for _, r := range resources {
			if !s.informer(r).HasSynced() {
				return false
			}
		}
	}
	c.synced.Store(true)
	return true
}

// unsynced names the resources whose informers have not synced yet.
func (c *Cluster) unsynced() []string {
	var out []string
	for _, r := range resources {
		if !c.resourceSynced(r) {
			out = append(out, r)
		}
	}
	return out
}

func (c *Cluster) resourceSynced(resource string) bool {
	if c.synced.Load() {
		return true
	}
	for _, s := range c.sets {
		if !s.informer(resource).HasSynced() {
			return false
		}
	}
	return true
}

// WaitForSync blocks until every informer has synced or ctx is done.
func (c *Cluster) WaitForSync(ctx context.Context) error {
	if !c.started.Load() {
		return errors.New("kubernetes: informers not started")
	}
	var checks []cache.InformerSynced
	for _, s := range c.sets {
		for _, r := range resources {
			checks = append(checks, s.informer(r).HasSynced)
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), checks...) {
		return fmt.Errorf("kubernetes: caches not synced (%s): %w", strings.Join(c.unsynced(), ", "), context.Cause(ctx))
	}
	c.synced.Store(true)
	return nil
}

// setFor returns the informers that watch namespace, or nil.
func (c *Cluster) setFor(namespace string) *informerSet {
	if c.all != nil {
		return c.all
	}
	return c.byNS[namespace]
}

// syncCollector exports amtriage_kubernetes_informer_synced{resource}: 1
// when the resource's informers (of every watched namespace) have synced.
type syncCollector struct{ c *Cluster }

var syncedDesc = prometheus.NewDesc("amtriage_kubernetes_informer_synced",
	"1 when the Kubernetes informer cache of the resource has synced, else 0.",
	[]string{"resource"}, nil)

func (s *syncCollector) Describe(ch chan<- *prometheus.Desc) { ch <- syncedDesc }

func (s *syncCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range resources {
		v := 0.0
		if s.c.started.Load() && s.c.resourceSynced(r) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(syncedDesc, prometheus.GaugeValue, v, r)
	}
}

// logCacheSize bounds the remembered log reads.
const logCacheSize = 256
