package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// Two nodes on a three-master Redis Cluster with sharded pub/sub: a
// broadcast made with SPUBLISH by a job (redis-cli -c), through
// /_broadcast on either node, or by `cablecar publish` reaches every
// subscriber on both nodes exactly once; a classic PUBLISH does not (it is
// another namespace), which the README says.
func TestShardedClusterExactlyOnce(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	env := documentEnv("")
	delete(env, "CABLECAR_REDIS_URL")
	env["CABLECAR_REDIS_CLUSTER_ADDRS"] = cluster[0].Addr + "," + cluster[1].Addr
	env["CABLECAR_REDIS_SHARDED_PUBSUB"] = "true"
	env["CABLECAR_BROADCAST_KEY"] = "bk-sharded"
	nodes := []*sidecar{startSidecar(t, env, "serve"), startSidecar(t, env, "serve")}
	tok := mustToken(t, env, "document:*")
	clients := documentClients(t, nodes, tok, 5)
	const stream = "document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"
	const channel = "myapp_production:" + stream
	ctx := context.Background()
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{cluster[2].Addr}})
	defer rdb.Close()
	if err := rdb.Publish(ctx, channel, `{"via":"classic"}`).Err(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("redis-cli", "-c", "-h", "127.0.0.1", "-p", portOf(cluster[2].Addr),
		"SPUBLISH", channel, `{"via":"redis-cli"}`).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli SPUBLISH: %v: %s", err, out)
	}
	for i, n := range nodes {
		body := fmt.Sprintf(`{"stream":%q,"data":{"via":"node %d"}}`, stream, i+1)
		req, _ := http.NewRequest("POST", "http://"+n.addr+"/_broadcast", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer bk-sharded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("/_broadcast on node %d: %v %v", i+1, resp, err)
		}
		resp.Body.Close()
	}
	pubEnv := map[string]string{
		"CABLECAR_REDIS_CLUSTER_ADDRS":  cluster[1].Addr,
		"CABLECAR_REDIS_SHARDED_PUBSUB": "true",
		"CABLECAR_CHANNEL_PREFIX":       "myapp_production",
	}
	if out, err := run(t, pubEnv, "publish", stream, `{"via":"cli"}`); err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	// Every publish above has returned; this one arrives last.
	if err := rdb.SPublish(ctx, channel, `{"via":"end"}`).Err(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, clients, `{"via":"redis-cli"}`, `{"via":"node 1"}`, `{"via":"node 2"}`, `{"via":"cli"}`, `{"via":"end"}`)
	for i, c := range clients {
		for _, ev := range jsclient.Filter(c.Wait(), jsclient.KindReceived) {
			if string(ev.Data) == `{"via":"classic"}` {
				t.Errorf("node %d: a classic PUBLISH was delivered in sharded mode", i+1)
			}
		}
	}
	for i, n := range nodes {
		resp, err := http.Get("http://" + n.addr + "/health")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("node %d /health: %v %v", i+1, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
