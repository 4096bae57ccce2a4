package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cablecar/cablecar/adapters/solidcable"
	"github.com/cablecar/cablecar/proxy"
)

// brokerSeries are the metrics of the broker's own work: for Solid Cable
// its polls, what they cost and how late they deliver. Other brokers have
// none beyond cablecar_broker_up and cablecar_broker_reconnects_total.
func brokerSeries(b proxy.Broker) []prometheus.Collector {
	sc, ok := b.(*solidcable.Broker)
	if !ok {
		return nil
	}
	counter := func(name, help string, f func(solidcable.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(sc.Stats()) })
	}
	return []prometheus.Collector{
		counter("cablecar_solid_cable_polls_total", "Polls of solid_cable_messages that completed (one query each, whatever the number of streams).",
			func(s solidcable.Stats) float64 { return float64(s.Polls) }),
		counter("cablecar_solid_cable_poll_errors_total", "Polls that failed (the database unreachable, the table missing, …).",
			func(s solidcable.Stats) float64 { return float64(s.PollErrors) }),
		counter("cablecar_solid_cable_poll_seconds_total", "Time spent polling; over the polls' rate, the mean poll duration.",
			func(s solidcable.Stats) float64 { return s.PollTime.Seconds() }),
		counter("cablecar_solid_cable_rows_delivered_total", "Rows handed to the hub (one per message, before fan-out).",
			func(s solidcable.Stats) float64 { return float64(s.Delivered) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cablecar_solid_cable_poll_lag_seconds",
			Help: "Age (by created_at) of the newest row the last delivering poll handed over: the polling interval, the query and any backlog."},
			func() float64 { return sc.Stats().Lag.Seconds() }),
	}
}

// brokerDetail adds the Solid Cable poll lag to the status page's broker
// object; nil for other brokers.
func brokerDetail(b proxy.Broker) func() map[string]any {
	sc, ok := b.(*solidcable.Broker)
	if !ok {
		return nil
	}
	return func() map[string]any {
		return map[string]any{"lag_seconds": sc.Stats().Lag.Seconds()}
	}
}
