package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
)

// Sidecar proxy mode with the real binary: the app's pages go through
// cablecar to a real upstream server, while /cable and /health stay
// cablecar's, on the same port.
func TestProxyModeFrontsTheApp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app page "+r.URL.Path+" for "+r.Header.Get("X-Forwarded-For"))
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })

	sc := startSidecar(t, map[string]string{"CABLECAR_ALLOW_ANONYMOUS": "true", "CABLECAR_ROUTES": "public:StreamChannel={params.stream}",
		"CABLECAR_UPSTREAM_URL": "http://" + ln.Addr().String()}, "serve")
	page, err := httpGet("http://" + sc.addr + "/documents/123")
	if err != nil || page != "app page /documents/123 for 127.0.0.1" {
		t.Errorf("page through cablecar: %q %v", page, err)
	}
	health, err := httpGet("http://" + sc.addr + "/health")
	if err != nil || !strings.Contains(health, `"status":"ok"`) {
		t.Errorf("/health: %q %v", health, err)
	}
	events := jsclient.Run(t, jsclient.Options{URL: "ws://" + sc.addr + "/cable", Duration: 5 * time.Second,
		Subscriptions: []map[string]any{{"channel": "StreamChannel", "stream": "x"}},
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindConnected, Count: 1}})
	if _, ok := jsclient.First(events, jsclient.KindConnected); !ok {
		t.Errorf("the cable did not work in proxy mode: %v", events)
	}
}
