package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// Three nodes on one Redis, a real client on each: a broadcast made
// through Redis, through /_broadcast on any node, or by `cablecar publish`
// reaches every subscriber on every node exactly once.
func TestMultiNodeExactlyOnce(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_BROADCAST_KEY"] = "bk-multi"
	nodes := []*sidecar{startSidecar(t, env, "serve"), startSidecar(t, env, "serve"), startSidecar(t, env, "serve")}
	tok := mustToken(t, env, "document:*")
	clients := documentClients(t, nodes, tok, 4)
	const stream = "document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Publish(ctx, "myapp_production:"+stream, `{"via":"redis"}`).Err(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+nodes[1].addr+"/_broadcast",
		strings.NewReader(`{"stream":"`+stream+`","data":{"via":"node 2"}}`))
	req.Header.Set("Authorization", "Bearer bk-multi")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("/_broadcast on node 2: %v %v", resp, err)
	}
	resp.Body.Close()
	if out, err := run(t, map[string]string{"CABLECAR_REDIS_URL": rs.URL, "CABLECAR_CHANNEL_PREFIX": "myapp_production"},
		"publish", stream, `{"via":"cli"}`); err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	// Every publish above has returned, so Redis delivers this one last.
	rdb.Publish(ctx, "myapp_production:"+stream, `{"via":"end"}`)
	checkExactlyOnce(t, clients, `{"via":"redis"}`, `{"via":"node 2"}`, `{"via":"cli"}`, `{"via":"end"}`)
}

// documentClients starts the real JS client on each node, subscribed to
// Document 123, until it has received want messages, and waits until each
// is connected.
func documentClients(t *testing.T, nodes []*sidecar, tok string, want int) []*jsclient.Client {
	t.Helper()
	clients := make([]*jsclient.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = jsclient.Start(t, jsclient.Options{
			URL:           n.wsURL("token=" + tok),
			Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
			Duration:      20 * time.Second,
			ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: want},
		})
	}
	for _, c := range clients {
		waitEvent(t, c, jsclient.KindConnected)
	}
	return clients
}

// checkExactlyOnce waits for each client to end and checks that it
// received every one of want exactly once and nothing else.
func checkExactlyOnce(t *testing.T, clients []*jsclient.Client, want ...string) {
	t.Helper()
	for i, c := range clients {
		var got []string
		for _, ev := range jsclient.Filter(c.Wait(), jsclient.KindReceived) {
			got = append(got, string(ev.Data))
		}
		seen := map[string]int{}
		for _, g := range got {
			seen[g]++
		}
		for _, w := range want {
			if seen[w] != 1 {
				t.Errorf("node %d: %s received %d times; all: %v", i+1, w, seen[w], got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("node %d: %d messages, want %d: %s", i+1, len(got), len(want), fmt.Sprint(got))
		}
	}
}
