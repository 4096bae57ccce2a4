package admin

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cablecar/cablecar/proxy"
)

// metrics are the Prometheus collectors. Counters the proxy already keeps
// as atomics are read at scrape time; labelled ones are fed by hooks.
type metrics struct {
	reg *prometheus.Registry

	closed     *prometheus.CounterVec
	authFail   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	subsActive prometheus.Gauge
	delivered  prometheus.Counter
	dropped    *prometheus.CounterVec
	fanout     prometheus.Histogram
}

func newMetrics(src Source) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	st := src.Server.Stats()
	counterFunc := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	gaugeFunc := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.closed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cablecar_connections_closed_total",
		Help: "Connections closed, by reason (client_gone, client_closed, too_slow, server_restart, …)."}, []string{"reason"})
	m.authFail = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cablecar_auth_failures_total",
		Help: "Connections refused before welcome, by reason (no_token, token_expired, origin, …)."}, []string{"reason"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cablecar_subscriptions_rejected_total",
		Help: "reject_subscription frames sent, by reason."}, []string{"reason"})
	m.subsActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: "cablecar_subscriptions_active",
		Help: "Confirmed subscriptions now."})
	m.delivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "cablecar_frames_delivered_total",
		Help: "Message frames queued for subscribers (one per subscriber per broadcast)."})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cablecar_deliveries_dropped_total",
		Help: "Frames not delivered: closed (connection already going) or too_slow (it fell behind)."}, []string{"reason"})
	m.fanout = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cablecar_fanout_duration_seconds",
		Help:    "From the broker handing a message over to its frame being queued on the last local subscriber.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10)})
	m.reg.MustRegister(m.closed, m.authFail, m.rejected, m.subsActive, m.delivered, m.dropped, m.fanout,
		gaugeFunc("cablecar_connections_open", "Connections open now.", func() float64 { return float64(st.ConnsOpen.Load()) }),
		counterFunc("cablecar_connections_opened_total", "Connections upgraded since start.", func() float64 { return float64(st.ConnsTotal.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cablecar_broadcasts_received_total",
			Help: "Messages received from the broker, valid or not.", ConstLabels: prometheus.Labels{"adapter": src.BrokerName}},
			func() float64 { return float64(st.BroadcastsReceived.Load()) }),
		counterFunc("cablecar_subscriptions_confirmed_total", "confirm_subscription frames sent.", func() float64 { return float64(st.SubsConfirmed.Load()) }),
		gaugeFunc("cablecar_streams_active", "Streams with local subscribers.", func() float64 { return float64(src.Server.StreamCount()) }),
		counterFunc("cablecar_invalid_payloads_total", "Broker messages dropped because the payload is not valid JSON.", func() float64 { return float64(st.InvalidPayloads.Load()) }),
		counterFunc("cablecar_pings_sent_total", "Action Cable ping frames queued.", func() float64 { return float64(st.PingsSent.Load()) }),
		gaugeFunc("cablecar_broker_up", "1 when the broker delivers (for Redis: the pub/sub probe round-trips), else 0.", func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if src.Broker.Health(ctx) != nil {
				return 0
			}
			return 1
		}),
	)
	m.reg.MustRegister(performCounters(src.Server.PerformStats())...)
	m.reg.MustRegister(src.BrokerSeries...)
	if len(src.Jobs) > 0 {
		m.reg.MustRegister(newJobCollector(src.Jobs))
	}
	if src.BrokerReconnects != nil {
		m.reg.MustRegister(counterFunc("cablecar_broker_reconnects_total", "Broker connections re-established after a loss.",
			func() float64 { return float64(src.BrokerReconnects()) }))
	}
	return m
}

// hooks feeds the labelled collectors.
func (m *metrics) hooks() proxy.Hooks {
	return proxy.Hooks{
		ConnClosed: func(_ proxy.ConnInfo, reason string) { m.closed.WithLabelValues(reason).Inc() },
		AuthFailed: func(_, reason, _ string) { m.authFail.WithLabelValues(reason).Inc() },
		Confirmed:  func(proxy.ConnInfo, string) { m.subsActive.Inc() },
		Rejected: func(_ proxy.ConnInfo, _, _, reason, _ string) {
			m.rejected.WithLabelValues(reason).Inc()
		},
		Unsubscribed: func(proxy.ConnInfo, string) { m.subsActive.Dec() },
		Broadcast: func(_ string, _ []byte, delivered int, received time.Time) {
			m.delivered.Add(float64(delivered))
			m.fanout.Observe(time.Since(received).Seconds())
		},
		Dropped: func(reason string, frames int) { m.dropped.WithLabelValues(reason).Add(float64(frames)) },
	}
}

// performCounters are cablecar_performs_total by result, each present
// (at 0) even when client actions are not forwarded at all.
func performCounters(st *proxy.PerformStats) []prometheus.Collector {
	results := []struct {
		name string
		n    *atomic.Int64
	}{
		{"forwarded", &st.Forwarded}, {"dropped_full", &st.DroppedFull}, {"failed", &st.Failed},
		{"invalid", &st.Invalid}, {"ignored", &st.Ignored},
	}
	out := make([]prometheus.Collector, 0, len(results))
	for _, r := range results {
		out = append(out, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cablecar_performs_total",
			Help:        "Client actions (perform): forwarded, dropped_full (queue full), failed (hook or Redis error, or shutdown), invalid (bad data) or ignored (no target, or no confirmed subscription).",
			ConstLabels: prometheus.Labels{"result": r.name}}, func() float64 { return float64(r.n.Load()) }))
	}
	return out
}
