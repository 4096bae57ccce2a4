package perform_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/perform"
	"github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/internal/redistest"
	"github.com/cablecar/cablecar/proxy"
)

var at = time.Date(2026, 12, 4, 15, 4, 5, 123456789, time.UTC)

// userAction is a perform from user 42 with a Rails connection identifier.
func userAction() proxy.Action {
	return proxy.Action{Conn: 17, User: "42", Claims: map[string]any{"sub": "42", "exp": json.Number("1795756886"), "streams": []any{"chat:*"}},
		ConnectionID: "Z2lkOi8vbXlhcHAvVXNlci80Mg", Identifier: `{"room":"lobby","channel":"ChatChannel"}`, Channel: "ChatChannel",
		Streams: []string{"chat:lobby"}, Name: "speak", Data: json.RawMessage(`{"body":"a <b> & é","n":1.50,"action":"speak"}`), At: at}
}

func anonymousAction() proxy.Action {
	return proxy.Action{Conn: 3, Anonymous: true, Identifier: `{"channel":"ChatChannel","room":"x"}`, Channel: "ChatChannel",
		Streams: []string{"chat:x"}, Name: "receive", Data: json.RawMessage(`{}`), At: at}
}

// causeOf returns the cause a failure is logged under.
func causeOf(err error) string {
	var pc proxy.PerformCauser
	if errors.As(err, &pc) {
		return pc.PerformCause()
	}
	return ""
}

func TestRedisStreamEntryFields(t *testing.T) {
	rs := redistest.Start(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	p := perform.NewRedisStream(rdb, "cable:actions", 0)
	cases := []struct {
		name string
		a    proxy.Action
		want []string
	}{
		{"user", userAction(), []string{
			"identifier", `{"room":"lobby","channel":"ChatChannel"}`,
			"channel", "ChatChannel",
			"streams", `["chat:lobby"]`,
			"action", "speak",
			"data", `{"body":"a <b> & é","n":1.50,"action":"speak"}`,
			"user", "42",
			"claims", `{"exp":1795756886,"streams":["chat:*"],"sub":"42"}`,
			"connection_identifier", "Z2lkOi8vbXlhcHAvVXNlci80Mg",
			"conn", "17",
			"at", "2026-12-04T15:04:05.123456789Z",
		}},
		{"anonymous", anonymousAction(), []string{
			"identifier", `{"channel":"ChatChannel","room":"x"}`,
			"channel", "ChatChannel",
			"streams", `["chat:x"]`,
			"action", "receive",
			"data", `{}`,
			"user", "",
			"claims", "null",
			"connection_identifier", "",
			"conn", "3",
			"at", "2026-12-04T15:04:05.123456789Z",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.Del(ctx, "cable:actions").Err(); err != nil {
				t.Fatal(err)
			}
			if err := p.Perform(ctx, tc.a); err != nil {
				t.Fatalf("Perform: %v", err)
			}
			// XRANGE through Do keeps the fields' order, which XRange's map would not.
			raw, err := rdb.Do(ctx, "XRANGE", "cable:actions", "-", "+").Slice()
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) != 1 {
				t.Fatalf("%d entries, want 1", len(raw))
			}
			var got []string
			for _, v := range raw[0].([]any)[1].([]any) {
				got = append(got, v.(string))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fields\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// MAXLEN ~ keeps the stream near its cap: at least the cap, well under
// what was added. Redis trims whole nodes of 100 entries (the default
// stream-node-max-entries), so the length stays below cap + 100.
func TestRedisStreamMaxLen(t *testing.T) {
	rs := redistest.Start(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	p := perform.NewRedisStream(rdb, "capped", 150)
	for range 1000 {
		if err := p.Perform(ctx, anonymousAction()); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rdb.XLen(ctx, "capped").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 150 || n >= 250 {
		t.Errorf("XLEN = %d, want 150 ≤ n < 250", n)
	}
}

func TestRedisStreamDownFailsWithCause(t *testing.T) {
	rs := redistest.Start(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	rs.Kill()
	err := perform.NewRedisStream(rdb, "s", 0).Perform(context.Background(), userAction())
	if err == nil || causeOf(err) != "redis" || !strings.Contains(err.Error(), "XADD s") {
		t.Errorf("err %v (cause %q), want an XADD failure with cause redis", err, causeOf(err))
	}
}

// hookServer records every request it answers with status.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	status int
	delay  time.Duration
}

func startHook(t *testing.T, status int, delay time.Duration) *hookServer {
	h := &hookServer{status: status, delay: delay}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.heads = append(h.heads, r.Header.Clone())
		h.mu.Unlock()
		if h.delay > 0 {
			select {
			case <-time.After(h.delay):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(h.status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() ([][]byte, []http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...), append([]http.Header(nil), h.heads...)
}

func TestHTTPHookBodyAndSignature(t *testing.T) {
	srv := startHook(t, http.StatusNoContent, 0)
	secret := "hook-secret"
	p := perform.NewHTTPHook(srv.URL+"/cable/actions", secret, 0)
	if err := p.Perform(context.Background(), userAction()); err != nil {
		t.Fatalf("Perform: %v", err)
	}
	bodies, heads := srv.requests()
	if len(bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(bodies))
	}
	want := `{"identifier":"{\"room\":\"lobby\",\"channel\":\"ChatChannel\"}","channel":"ChatChannel","streams":["chat:lobby"],` +
		`"action":"speak","data":{"body":"a <b> & é","n":1.50,"action":"speak"},"user":"42",` +
		`"claims":{"exp":1795756886,"streams":["chat:*"],"sub":"42"},"connection_identifier":"Z2lkOi8vbXlhcHAvVXNlci80Mg",` +
		`"conn":"17","at":"2026-12-04T15:04:05.123456789Z"}`
	if string(bodies[0]) != want {
		t.Errorf("body\n got %s\nwant %s", bodies[0], want)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(bodies[0])
	if got, want := heads[0].Get("X-Cablecar-Signature"), "sha256="+hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	if got := heads[0].Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}

	unsigned := perform.NewHTTPHook(srv.URL, "", 0)
	if err := unsigned.Perform(context.Background(), anonymousAction()); err != nil {
		t.Fatal(err)
	}
	bodies, heads = srv.requests()
	if _, ok := heads[1]["X-Cablecar-Signature"]; ok {
		t.Error("signature header sent without a secret")
	}
	wantAnon := `{"identifier":"{\"channel\":\"ChatChannel\",\"room\":\"x\"}","channel":"ChatChannel","streams":["chat:x"],` +
		`"action":"receive","data":{},"user":"","claims":null,"connection_identifier":"","conn":"3","at":"2026-12-04T15:04:05.123456789Z"}`
	if string(bodies[1]) != wantAnon {
		t.Errorf("anonymous body\n got %s\nwant %s", bodies[1], wantAnon)
	}
}

// A non-2xx answer and a timeout fail with their cause, each after one
// request: no retries.
func TestHTTPHookFailures(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		delay   time.Duration
		timeout time.Duration
		cause   string
	}{
		{"server error", http.StatusServiceUnavailable, 0, time.Second, "http_503"},
		{"client error", http.StatusUnauthorized, 0, time.Second, "http_401"},
		{"timeout", http.StatusOK, 5 * time.Second, 100 * time.Millisecond, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startHook(t, tc.status, tc.delay)
			err := perform.NewHTTPHook("http://user:pw@"+strings.TrimPrefix(srv.URL, "http://"), "", tc.timeout).Perform(context.Background(), userAction())
			if err == nil || causeOf(err) != tc.cause {
				t.Fatalf("err %v (cause %q), want cause %s", err, causeOf(err), tc.cause)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("password in the error: %v", err)
			}
			if bodies, _ := srv.requests(); len(bodies) != 1 {
				t.Errorf("%d requests, want exactly 1", len(bodies))
			}
		})
	}
}

func TestConfig(t *testing.T) {
	redisURL := redis.Config{URL: "redis://127.0.0.1:1/0"}
	cases := []struct {
		name    string
		cfg     perform.Config
		rcfg    redis.Config
		kind    string // "" none, "stream", "http"
		wantErr string
	}{
		{"neither", perform.Config{}, redis.Config{}, "", ""},
		{"stream", perform.Config{Stream: "actions"}, redisURL, "stream", ""},
		{"http", perform.Config{URL: "https://app.example/actions", Secret: "s"}, redis.Config{}, "http", ""},
		{"both", perform.Config{Stream: "actions", URL: "http://127.0.0.1/x"}, redisURL, "", "are both set"},
		{"stream without redis", perform.Config{Stream: "actions"}, redis.Config{}, "", "needs the broker's Redis"},
		{"bad url", perform.Config{URL: "ftp://x/y"}, redis.Config{}, "", "not an http:// or https:// URL"},
		{"secret without url", perform.Config{Stream: "a", Secret: "s"}, redisURL, "", "CABLECAR_PERFORM_SECRET"},
		{"negative", perform.Config{URL: "http://x/", Timeout: -time.Second}, redis.Config{}, "", "must not be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, closer, err := perform.New(tc.cfg, tc.rcfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			var kind string
			switch p.(type) {
			case *perform.RedisStream:
				kind = "stream"
			case *perform.HTTPHook:
				kind = "http"
			}
			if kind != tc.kind || (p == nil) != (tc.kind == "") {
				t.Errorf("performer %T, want %q", p, tc.kind)
			}
		})
	}
}
