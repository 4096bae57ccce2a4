package proxy_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/internal/redistest"
	"github.com/cablecar/cablecar/proxy"
)

// recordedRemoteDisconnect returns what Rails published for
// remote_connections.where(current_user: User 42).disconnect(…).
func recordedRemoteDisconnect(t *testing.T, version, step string) (channel, payload string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/redis_broadcasts.actioncable-" + version + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Broadcasts []struct {
			Step         string `json:"step"`
			RedisChannel string `json:"redis_channel"`
			Payload      string `json:"payload"`
		} `json:"broadcasts"`
	}
	json.Unmarshal(raw, &f)
	for _, b := range f.Broadcasts {
		if b.Step == step {
			return b.RedisChannel, b.Payload
		}
	}
	t.Fatalf("no %s in %s", step, version)
	return "", ""
}

// Rails' remote disconnect, through a real Redis: every connection of that
// user gets the remote disconnect frame and a close; others stay; the
// internal channel is one Redis subscription however many sockets share it.
func TestRemoteDisconnect(t *testing.T) {
	cases := []struct {
		version, step string
		want          string
	}{
		{"8.1.3", "remote_disconnect", `{"type":"disconnect","reason":"remote","reconnect":true}`},
		{"8.1.3", "remote_disconnect_no_reconnect", `{"type":"disconnect","reason":"remote","reconnect":false}`},
		{"6.1.7.10", "remote_disconnect", `{"type":"disconnect","reason":"remote","reconnect":true}`},
	}
	rs := redistest.Start(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	for _, c := range cases {
		t.Run(c.version+"/"+c.step, func(t *testing.T) {
			b, err := redis.New(redis.Config{URL: rs.URL, ChannelPrefix: "myapp_production"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			acfg := auth.Config{JWTSecret: strings.Repeat("r", 32), GIDApp: "myapp", Routes: testRoute,
				ConnectionIdentifier: "{gid:User:claims.sub}"}
			ts := startServer(t, proxy.Config{}, acfg, b)
			a, _ := auth.New(acfg)
			tok42, _ := a.Mint("42", nil, time.Minute)
			tok7, _ := a.Mint("7", nil, time.Minute)
			u42a, u42b, u7 := welcomed(t, ts.url("token="+tok42)), welcomed(t, ts.url("token="+tok42)), welcomed(t, ts.url("token="+tok7))
			channel, payload := recordedRemoteDisconnect(t, c.version, c.step)
			waitFor(t, "one shared internal subscription", func() bool {
				n, _ := rdb.PubSubNumSub(context.Background(), channel).Result()
				return n[channel] == 1
			})
			if err := rdb.Publish(context.Background(), channel, payload).Err(); err != nil {
				t.Fatal(err)
			}
			for _, cl := range []*client{u42a, u42b} {
				if got := cl.nextText(); got != c.want {
					t.Errorf("got %s, want %s", got, c.want)
				}
				if f := cl.next(); f.op != ws.OpClose || string(f.payload) != "\x03\xe8" {
					t.Errorf("got %v % x, want close 1000", f.op, f.payload)
				}
			}
			u7.command("subscribe", lobby) // still served
			if got := u7.nextText(); got != confirmFrame(lobby) {
				t.Errorf("other user: got %s", got)
			}
			waitFor(t, "internal channel released", func() bool {
				n, _ := rdb.PubSubNumSub(context.Background(), channel).Result()
				return n[channel] == 0
			})
		})
	}
}
