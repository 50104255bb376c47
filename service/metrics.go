package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authzd/authzd/rego"
)

// metrics are registered on a per-server registry, so several servers in one
// process (tests) never collide. Label children are resolved once.
type metrics struct {
	reg *prometheus.Registry

	allowFresh, allowCached, denyFresh, denyCached prometheus.Counter
	duration                                       prometheus.Histogram
	identityHits, identityMisses                   prometheus.Counter
	decisionHits, decisionMisses                   prometheus.Counter
	evalErrors                                     prometheus.Counter
	revision                                       *prometheus.GaugeVec
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authzd_checks_total", Help: "Decisions made, by result and whether they came from the decision cache.",
	}, []string{"result", "cached"})
	cacheReq := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authzd_cache_requests_total", Help: "Cache lookups by cache and outcome.",
	}, []string{"cache", "outcome"})
	m := &metrics{
		reg:         reg,
		allowFresh:  checks.WithLabelValues("allow", "false"),
		allowCached: checks.WithLabelValues("allow", "true"),
		denyFresh:   checks.WithLabelValues("deny", "false"),
		denyCached:  checks.WithLabelValues("deny", "true"),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "authzd_check_duration_seconds",
			Help:    "Time to decide one check, including identity resolution.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
		}),
		identityHits:   cacheReq.WithLabelValues("identity", "hit"),
		identityMisses: cacheReq.WithLabelValues("identity", "miss"),
		decisionHits:   cacheReq.WithLabelValues("decision", "hit"),
		decisionMisses: cacheReq.WithLabelValues("decision", "miss"),
		evalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authzd_policy_eval_errors_total", Help: "Evaluations that failed and were denied.",
		}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "authzd_policy_revision_info", Help: "The serving policy revision (value is always 1).",
		}, []string{"revision"}),
	}
	reg.MustRegister(checks, cacheReq, m.duration, m.evalErrors, m.revision)
	return m
}

// watchEngine exports the engine's failed-load count.
func (m *metrics) watchEngine(e *rego.Engine) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "authzd_policy_reload_errors_total", Help: "Policy loads that failed; the last good set kept serving.",
	}, func() float64 { return float64(e.LoadErrors()) }))
}

func (m *metrics) observe(allowed, cached bool, d time.Duration) {
	switch {
	case allowed && cached:
		m.allowCached.Inc()
	case allowed:
		m.allowFresh.Inc()
	case cached:
		m.denyCached.Inc()
	default:
		m.denyFresh.Inc()
	}
	m.duration.Observe(d.Seconds())
}
