package servetest

import (
	"net/http"
	"testing"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

func TestServeAndStop(t *testing.T) {
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{}, memory.New(), a, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := Serve(t, srv)
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Fatalf("stop = %v, want Serve's nil after a clean drain", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop = %v, want the same nil", err)
	}
	if _, err := http.Get("http://" + addr + "/health"); err == nil {
		t.Error("still serving after stop")
	}
}
