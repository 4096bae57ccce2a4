package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/internal/redistest"
)

// closedURL returns an http URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

// TestDoctorCluster runs `cablecar doctor` with only the cluster variables
// set: it checks the cluster's masters instead of saying it cannot.
func TestDoctorCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	t.Setenv("CABLECAR_JWT_SECRET", "0123456789abcdef0123456789abcdef-cmd")
	t.Setenv("CABLECAR_REDIS_CLUSTER_ADDRS", nodes[0].Addr+","+nodes[1].Addr)
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := doctor(ctx, []string{"--listen", "0", "--url", closedURL(t)}, &out)
	// A cablecar that is not running yet is only a warning.
	if err != nil {
		t.Errorf("doctor = %v:\n%s", err, out.String())
	}
	for _, want := range []string{
		"redis reachable         Redis Cluster " + nodes[0].Addr + ", " + nodes[1].Addr + ": 3 masters reachable",
		"redis maxmemory-policy  all 3 masters: noeviction",
		"redis pub/sub           a message published on a private channel came back",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("%q not in:\n%s", want, out.String())
		}
	}
}

// TestDoctorTLSSettings checks that the new variables reach doctor: a CA
// file that does not exist is reported, naming the variable.
func TestDoctorTLSSettings(t *testing.T) {
	t.Setenv("CABLECAR_JWT_SECRET", "0123456789abcdef0123456789abcdef-cmd")
	t.Setenv("CABLECAR_REDIS_SENTINELS", "127.0.0.1:1")
	t.Setenv("CABLECAR_REDIS_MASTER_NAME", "m")
	t.Setenv("CABLECAR_REDIS_USERNAME", "alice")
	t.Setenv("CABLECAR_REDIS_SENTINEL_USERNAME", "watcher")
	t.Setenv("CABLECAR_REDIS_TLS", "true")
	t.Setenv("CABLECAR_REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Redis; !r.TLS || r.TLSCAFile != "/nonexistent/ca.pem" || r.Username != "alice" || r.SentinelUsername != "watcher" {
		t.Errorf("Redis config = %+v", r)
	}
	var out strings.Builder
	_ = doctor(context.Background(), []string{"--listen", "0", "--url", closedURL(t)}, &out)
	if !strings.Contains(out.String(), "FAIL  redis reachable   CABLECAR_REDIS_TLS_CA_FILE: open /nonexistent/ca.pem: no such file or directory") {
		t.Errorf("output:\n%s", out.String())
	}
}
