package main

import (
	"context"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/adapters/postgres"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

func TestStartHistory(t *testing.T) {
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := postgres.New(postgres.Config{URL: "postgres://127.0.0.1:1/x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	tests := []struct {
		name   string
		rules  string
		broker proxy.Broker
		err    string // "" for none
	}{
		{"off", "", memory.New(), ""},
		{"memory", "document:*:100:5m", memory.New(), ""},
		{"bad rule", "document:*:lots:5m", memory.New(), "CABLECAR_HISTORY"},
		{"postgres", "document:*:100:5m", pg, "needs the Redis broker"},
		{"postgres, off", "", pg, ""},
	}
	for _, tt := range tests {
		srv, err := proxy.New(proxy.Config{}, tt.broker, a, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop, err := startHistory(context.Background(), historyConfig{Rules: tt.rules}, tt.broker, srv, nil)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.err)
		case err == nil:
			stop()
		}
	}
}
