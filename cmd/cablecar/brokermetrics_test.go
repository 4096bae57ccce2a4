package main

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/adapters/postgres"
	"github.com/cablecar/cablecar/adapters/solidcable"
)

// TestBrokerSeries checks the Solid Cable series exist from the start, at
// 0, and that the other brokers add none; and that the reconnect metric
// reads the database brokers too.
func TestBrokerSeries(t *testing.T) {
	sc, err := solidcable.New(solidcable.Config{URL: "sqlite3://" + filepath.Join(t.TempDir(), "cable.sqlite3")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(brokerSeries(sc)...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		m := f.GetMetric()[0]
		if v := m.GetCounter().GetValue() + m.GetGauge().GetValue(); v != 0 {
			t.Errorf("%s = %v at start, want 0", f.GetName(), v)
		}
	}
	want := []string{"cablecar_solid_cable_poll_errors_total", "cablecar_solid_cable_poll_lag_seconds",
		"cablecar_solid_cable_poll_seconds_total", "cablecar_solid_cable_polls_total", "cablecar_solid_cable_rows_delivered_total"}
	if !slices.Equal(names, want) {
		t.Errorf("series = %q, want %q", names, want)
	}
	if got := brokerDetail(sc)(); got["lag_seconds"] != 0.0 {
		t.Errorf("detail = %v, want lag_seconds 0", got)
	}
	if brokerSeries(memory.New()) != nil || brokerDetail(memory.New()) != nil {
		t.Error("the memory broker has broker series or detail, want none")
	}

	pg, err := postgres.New(postgres.Config{URL: "postgres://127.0.0.1:1/app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	for name, f := range map[string]func() int64{"postgres": reconnects(pg), "solid_cable": reconnects(sc)} {
		if f == nil || f() != 0 {
			t.Errorf("%s: reconnects is nil or not 0", name)
		}
	}
	if reconnects(memory.New()) != nil {
		t.Error("memory broker: reconnects is set, want nil")
	}
}
