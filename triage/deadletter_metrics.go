package triage

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/store"
)

// deadLetterCollector exports the dead-letter queue's size.
type deadLetterCollector struct {
	store interface{ DeadLetterCounts() map[string]int }
}

var deadLettersDesc = prometheus.NewDesc("amtriage_dead_letters",
	"Dead letters kept (notifications the pipeline gave up on: queue=inbox; events a receiver could not take: queue=<receiver>), until replayed or pruned after incidents.retention.",
	[]string{"queue"}, nil)

func (c deadLetterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deadLettersDesc }

func (c deadLetterCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.store.DeadLetterCounts()
	if _, ok := counts[store.InboxQueue]; !ok {
		counts[store.InboxQueue] = 0
	}
	for q, n := range counts {
		ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(n), q)
	}
}
