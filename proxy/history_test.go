package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/history"
	"github.com/cablecar/cablecar/proxy"
)

// historyServer runs a server whose memory broker records chat:l* (size
// 5, a minute), so chat:lobby has history and chat:other none.
func historyServer(t *testing.T) (*testServer, *history.Memory) {
	t.Helper()
	rules := history.Rules{{Pattern: "chat:l*", Size: 5, TTL: time.Minute}}
	store := history.NewMemory(rules)
	b := memory.New()
	b.SetHistory(store)
	ts := startServer(t, proxy.Config{PingInterval: time.Hour}, anonymous(), b, func(s *proxy.Server, _ *auth.Auth) {
		s.SetHistory(store, rules)
	})
	return ts, store
}

// dialExt connects with the AnyCable extended protocol only and reads the
// welcome, which must carry a fresh session id and no restore.
func dialExt(t *testing.T, url string) *client {
	t.Helper()
	c, w := dialExtWelcome(t, url)
	if w.Restored || len(w.RestoredIDs) > 0 {
		t.Fatalf("welcome restored a session: %+v", w)
	}
	return c
}

type extWelcome struct {
	Type        string   `json:"type"`
	Sid         string   `json:"sid"`
	Restored    bool     `json:"restored"`
	RestoredIDs []string `json:"restored_ids"`
}

func dialExtWelcome(t *testing.T, url string) (*client, extWelcome) {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"actioncable-v1-ext-json"}, Timeout: 5 * time.Second}
	nc, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: nc, protocol: hs.Protocol}
	if br != nil {
		c.r = br
	}
	if c.protocol != "actioncable-v1-ext-json" {
		t.Fatalf("subprotocol %q, want actioncable-v1-ext-json", c.protocol)
	}
	got := c.nextText()
	var w extWelcome
	if err := json.Unmarshal([]byte(got), &w); err != nil || w.Type != "welcome" || len(w.Sid) != 32 {
		t.Fatalf("welcome = %s", got)
	}
	return c, w
}

func publish(t *testing.T, ts *testServer, stream string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := ts.broker.Publish(context.Background(), stream, []byte(`{"n":`+strconv.Itoa(i)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
}

func recorded(identifier string, n int, epoch string) string {
	q, _ := json.Marshal(identifier)
	return fmt.Sprintf(`{"identifier":%s,"message":{"n":%d},"stream_id":"chat:lobby","epoch":"%s","offset":%d}`, q, n, epoch, n)
}

func historyType(identifier, typ string) string {
	q, _ := json.Marshal(identifier)
	return `{"identifier":` + string(q) + `,"type":"` + typ + `"}`
}

func subscribeWithHistory(c *client, identifier, history string) {
	q, _ := json.Marshal(identifier)
	c.sendText(`{"command":"subscribe","identifier":` + string(q) + `,"history":` + history + `}`)
}

func epochOf(t *testing.T, store *history.Memory) string {
	t.Helper()
	snap, err := store.Snapshot(context.Background(), "chat:lobby")
	if err != nil || snap.Epoch == "" {
		t.Fatalf("no history for chat:lobby: %+v %v", snap, err)
	}
	return snap.Epoch
}

// A broadcast on a recorded stream reaches a plain client exactly as
// without history and an extended client with its position; a stream no
// rule covers reaches both alike.
func TestHistoryLiveFrames(t *testing.T) {
	ts, store := historyServer(t)
	plain := welcomed(t, ts.url(""))
	ext := dialExt(t, ts.url(""))
	for _, c := range []*client{plain, ext} {
		c.command("subscribe", lobby)
		if got := c.nextText(); got != confirmFrame(lobby) {
			t.Fatalf("confirm = %s", got)
		}
	}
	publish(t, ts, "chat:lobby", 1, 2)
	epoch := epochOf(t, store)
	for n := 1; n <= 2; n++ {
		if got, want := plain.nextText(), messageFrame(lobby, fmt.Sprintf(`{"n":%d}`, n)); got != want {
			t.Errorf("plain client: %s, want %s", got, want)
		}
		if got, want := ext.nextText(), recorded(lobby, n, epoch); got != want {
			t.Errorf("extended client: %s, want %s", got, want)
		}
	}
	// pong is accepted silently; the connection goes on.
	ext.sendText(`{"command":"pong"}`)
	other := `{"channel":"ChatChannel","room":"other"}`
	ext.command("subscribe", other)
	if got := ext.nextText(); got != confirmFrame(other) {
		t.Fatalf("confirm = %s", got)
	}
	ts.broker.Publish(context.Background(), "chat:other", []byte(`[1]`))
	if got, want := ext.nextText(), messageFrame(other, `[1]`); got != want {
		t.Errorf("unrecorded stream: %s, want %s", got, want)
	}
	plain.expectNothing(100 * time.Millisecond)
	noErrorLogs(t, ts)
	if strings.Contains(ts.logs.String(), "ignored") {
		t.Errorf("a command was ignored:\n%s", ts.logs.String())
	}
}

// A subscribe with a history request gets what it missed, once and in
// order, then confirm_history, then the live stream; a request the kept
// history cannot answer gets reject_history.
func TestHistoryRequests(t *testing.T) {
	ts, store := historyServer(t)
	publish(t, ts, "chat:lobby", 1, 8) // size 5: 4…8 are kept
	epoch := epochOf(t, store)
	tests := []struct {
		name    string
		request string
		want    []int // offsets sent; nil: reject_history
	}{
		{"after offset 5", `{"streams":{"chat:lobby":{"epoch":"` + epoch + `","offset":5}}}`, []int{6, 7, 8}},
		{"after the oldest dropped", `{"streams":{"chat:lobby":{"epoch":"` + epoch + `","offset":3}}}`, []int{4, 5, 6, 7, 8}},
		{"at the last", `{"streams":{"chat:lobby":{"epoch":"` + epoch + `","offset":8}}}`, []int{}},
		{"past retention", `{"streams":{"chat:lobby":{"epoch":"` + epoch + `","offset":2}}}`, nil},
		{"another epoch", `{"streams":{"chat:lobby":{"epoch":"00000000","offset":7}}}`, nil},
		{"since a minute ago, after trimming", `{"since":` + strconv.FormatInt(time.Now().Add(-50*time.Second).Unix(), 10) + `}`, nil},
		{"since now", `{"since":` + strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10) + `}`, []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialExt(t, ts.url(""))
			subscribeWithHistory(c, lobby, tt.request)
			if got := c.nextText(); got != confirmFrame(lobby) {
				t.Fatalf("first = %s, want confirm", got)
			}
			if tt.want == nil {
				if got := c.nextText(); got != historyType(lobby, "reject_history") {
					t.Fatalf("got %s, want reject_history", got)
				}
			} else {
				for _, n := range tt.want {
					if got := c.nextText(); got != recorded(lobby, n, epoch) {
						t.Fatalf("got %s, want offset %d", got, n)
					}
				}
				if got := c.nextText(); got != historyType(lobby, "confirm_history") {
					t.Fatalf("got %s, want confirm_history", got)
				}
			}
			c.expectNothing(50 * time.Millisecond)
		})
	}
	noErrorLogs(t, ts)
}

// The history command on a live subscription sends what was missed and
// nothing it already sent.
func TestHistoryCommand(t *testing.T) {
	ts, store := historyServer(t)
	c := dialExt(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("confirm = %s", got)
	}
	publish(t, ts, "chat:lobby", 1, 3)
	epoch := epochOf(t, store)
	for n := 1; n <= 3; n++ {
		if got := c.nextText(); got != recorded(lobby, n, epoch) {
			t.Fatalf("live %d: %s", n, got)
		}
	}
	q, _ := json.Marshal(lobby)
	// Asks from offset 1: 2 and 3 were sent already, so only the confirm.
	c.sendText(`{"command":"history","identifier":` + string(q) + `,"history":{"streams":{"chat:lobby":{"epoch":"` + epoch + `","offset":1}}}}`)
	if got := c.nextText(); got != historyType(lobby, "confirm_history") {
		t.Fatalf("got %s, want confirm_history alone", got)
	}
	publish(t, ts, "chat:lobby", 4, 4)
	if got := c.nextText(); got != recorded(lobby, 4, epoch) {
		t.Fatalf("live 4: %s", got)
	}
	if !strings.Contains(ts.logs.String(), "subscription confirmed") {
		t.Error("no confirm logged")
	}
}

// A reconnect with ?sid= gets its subscriptions back without subscribing
// (welcome restored, no confirm_subscription) and asks for what it missed
// with the history command. A session is restored once, and a plain
// client's welcome is unchanged.
func TestSessionRestore(t *testing.T) {
	ts, store := historyServer(t)
	c, w := dialExtWelcome(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("confirm = %s", got)
	}
	publish(t, ts, "chat:lobby", 1, 2)
	epoch := epochOf(t, store)
	for n := 1; n <= 2; n++ {
		if got := c.nextText(); got != recorded(lobby, n, epoch) {
			t.Fatalf("live %d: %s", n, got)
		}
	}
	c.nc.Close()
	waitFor(t, "the connection ended", func() bool { return ts.Stats().ConnsOpen.Load() == 0 })
	publish(t, ts, "chat:lobby", 3, 4)

	r, rw := dialExtWelcome(t, ts.url("sid="+w.Sid))
	if !rw.Restored || len(rw.RestoredIDs) != 1 || rw.RestoredIDs[0] != lobby || rw.Sid == w.Sid {
		t.Fatalf("welcome after reconnect = %+v, want restored [%s] with a new sid", rw, lobby)
	}
	q, _ := json.Marshal(lobby)
	r.sendText(`{"command":"history","identifier":` + string(q) + `,"history":{"streams":{"chat:lobby":{"epoch":"` + epoch + `","offset":2}}}}`)
	for n := 3; n <= 4; n++ {
		if got := r.nextText(); got != recorded(lobby, n, epoch) {
			t.Fatalf("missed %d: %s", n, got)
		}
	}
	if got := r.nextText(); got != historyType(lobby, "confirm_history") {
		t.Fatalf("got %s, want confirm_history", got)
	}
	publish(t, ts, "chat:lobby", 5, 5)
	if got := r.nextText(); got != recorded(lobby, 5, epoch) {
		t.Fatalf("live 5: %s", got)
	}
	// The old id is used up.
	if _, again := dialExtWelcome(t, ts.url("sid="+w.Sid)); again.Restored {
		t.Fatalf("a session was restored twice: %+v", again)
	}
	if got := welcomed(t, ts.url("")); got.protocol != "actioncable-v1-json" {
		t.Fatalf("plain client protocol %q", got.protocol)
	}
	noErrorLogs(t, ts)
}
