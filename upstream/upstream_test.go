package upstream_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/cablecar/cablecar/upstream"
)

// serve runs h on a loopback port and returns its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// app is a real upstream: it echoes what it saw, streams, and speaks
// WebSocket on /app-socket.
func app(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join([]string{r.Method, r.URL.RequestURI(), r.Host,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto")}, "|"))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the first event must arrive while this is still open
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })
	mux.HandleFunc("/app-socket", func(w http.ResponseWriter, r *http.Request) {
		nc, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer nc.Close()
		msg, op, err := wsutil.ReadClientData(nc)
		if err == nil {
			wsutil.WriteServerMessage(nc, op, append([]byte("app got: "), msg...))
		}
	})
	return serve(t, mux)
}

func front(t *testing.T, cfg upstream.Config) string {
	t.Helper()
	h, err := upstream.Handler(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, h)
}

func TestForwardsWithHostAndXForwarded(t *testing.T) {
	base := front(t, upstream.Config{URL: app(t)})
	resp, err := http.Get(base + "/echo?a=1&b=two")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	host := strings.TrimPrefix(base, "http://")
	want := "GET|/echo?a=1&b=two|" + host + "|127.0.0.1|" + host + "|http"
	if string(body) != want {
		t.Errorf("app saw %q, want %q", body, want)
	}
}

func TestStreamsResponses(t *testing.T) {
	base := front(t, upstream.Config{URL: app(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "data: first\n" {
			t.Errorf("got %q", l)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the streamed event was held back")
	}
}

func TestPassesOtherWebSocketsThrough(t *testing.T) {
	base := front(t, upstream.Config{URL: app(t)})
	nc, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(base, "http")+"/app-socket")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wsutil.WriteClientText(nc, []byte("hi"))
	nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	msg, err := wsutil.ReadServerText(nc)
	if err != nil || string(msg) != "app got: hi" {
		t.Errorf("got %q %v", msg, err)
	}
}

func TestUpstreamDownAndSlow(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	for _, c := range []struct {
		cfg    upstream.Config
		path   string
		status int
	}{
		{upstream.Config{URL: dead}, "/", http.StatusBadGateway},
		{upstream.Config{URL: app(t), Timeout: 200 * time.Millisecond}, "/slow", http.StatusGatewayTimeout},
	} {
		resp, err := http.Get(front(t, c.cfg) + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s%s: %d, want %d", c.cfg.URL, c.path, resp.StatusCode, c.status)
		}
	}
}

func TestRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"127.0.0.1:3000", "ftp://x", "http://"} {
		if _, err := upstream.Handler(upstream.Config{URL: u}, nil); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
