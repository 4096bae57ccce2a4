package doctor

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisbroker "github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/internal/redistest"
)

// startBroker runs a cablecar with a Redis broker on rc (fast probes) and
// returns its base URL.
func startBroker(t *testing.T, rc redisbroker.Config) string {
	t.Helper()
	rc.ProbeInterval, rc.ProbeTimeout = 50*time.Millisecond, time.Second
	rc.BackoffMin, rc.BackoffMax = 10*time.Millisecond, 100*time.Millisecond
	b, err := redisbroker.New(rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
			t.Errorf("broker Close: %v", err)
		}
	})
	return startCablecar(t, b)
}

// TestSentinel checks a Sentinel setup with TLS and ACL users everywhere:
// doctor asks the sentinel for the master, names its address, and runs
// the server checks on it.
func TestSentinel(t *testing.T) {
	t.Parallel()
	const name = "doctor-master"
	sec := redistest.Secure{Certs: redistest.NewCerts(t), User: "alice", Password: "s3cret-not-shown"}
	master := redistest.StartSecure(t, sec)
	sentinel := redistest.StartSecureSentinel(t, name, master, sec)
	rc := redisbroker.Config{
		Sentinels: []string{sentinel.ClientAddr}, MasterName: name,
		Username: sec.User, Password: sec.Password,
		SentinelUsername: sec.User, SentinelPassword: sec.Password,
		TLS: true, TLSCAFile: sec.Certs.CAFile,
	}
	rc.ChannelPrefix = "myapp_production"
	url := startBroker(t, rc)

	r := run(t, Config{Auth: goodAuth(), Redis: rc, ChannelPrefix: "myapp_production", Listen: 100e6, HealthURL: url})
	if r.Failed() {
		t.Errorf("%d checks failed", r.Count(Fail))
	}
	want := "master " + name + " at " + master.ClientAddr + " (from Sentinel " + sentinel.ClientAddr + ") (redis "
	if res := only(t, r, nameRedis); res.Status != OK || !strings.HasPrefix(res.Message, want) {
		t.Errorf("redis reachable = %+v, want OK starting %q", res, want)
	}
	for _, check := range []string{namePolicy, nameMemory, namePubSub, nameTraffic} {
		if res := only(t, r, check); res.Status != OK {
			t.Errorf("%s = %+v", check, res)
		}
	}
	if res := only(t, r, nameNodes); res.Status != OK || !strings.Contains(res.Message, "1 running node subscribed") {
		t.Errorf("nodes = %+v", res)
	}
	if res := only(t, r, nameHealth); res.Status != OK {
		t.Errorf("health = %+v", res)
	}
	checkNoSecret(t, r, sec.Password)

	// A master name the sentinel does not know: FAIL, naming the sentinel.
	rc.MasterName = "no-such-master"
	r = run(t, Config{Auth: goodAuth(), Redis: rc})
	res := only(t, r, nameRedis)
	if res.Status != Fail || !strings.Contains(res.Message, "Sentinel "+sentinel.ClientAddr) || !strings.Contains(res.Fix, "get-master-addr-by-name no-such-master") {
		t.Errorf("unknown master: %+v", res)
	}
	if got := r.Find(namePolicy); len(got) != 0 {
		t.Errorf("policy checked without a master: %+v", got)
	}
	checkNoSecret(t, r, sec.Password)
}

// TestCluster checks every master of a cluster: one of three evicts any
// key, which fails naming that node, while the lines the nodes share come
// once.
func TestCluster(t *testing.T) {
	t.Parallel()
	nodes := redistest.StartCluster(t, 3)
	mustDo(t, client(t, nodes[1].URL), "CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
	rc := redisbroker.Config{ClusterAddrs: []string{nodes[0].Addr}, ChannelPrefix: "myapp_production"}
	startBroker(t, rc)

	r := run(t, Config{Auth: goodAuth(), Redis: rc, ChannelPrefix: "myapp_production", Listen: 100e6})
	if res := only(t, r, nameRedis); res.Status != OK || !strings.Contains(res.Message, "Redis Cluster "+nodes[0].Addr+": 3 masters reachable") {
		t.Errorf("redis reachable = %+v", res)
	}
	policies := r.Find(namePolicy)
	if len(policies) != 3 {
		t.Fatalf("policy lines = %+v, want one per master (they differ)", policies)
	}
	for _, res := range policies {
		bad := strings.HasPrefix(res.Message, nodes[1].Addr+": allkeys-lru")
		if bad != (res.Status == Fail) || (!bad && !strings.Contains(res.Message, ": noeviction")) {
			t.Errorf("policy line %+v", res)
		}
	}
	if n := r.Count(Fail); n != 1 {
		t.Errorf("%d FAIL lines, want only the allkeys-lru master's", n)
	}
	// Memory covers every master: one line each, or one "all 3 masters"
	// line when their figures round alike (mergeNodes).
	switch got := r.Find(nameMemory); {
	case len(got) == 1 && strings.HasPrefix(got[0].Message, "all 3 masters: "):
	case len(got) == 3:
		for _, n := range nodes {
			if !slices.ContainsFunc(got, func(res Result) bool { return strings.HasPrefix(res.Message, n.Addr+": ") }) {
				t.Errorf("memory lines = %+v: none for %s", got, n.Addr)
			}
		}
	default:
		t.Errorf("memory lines = %+v, want one per master or one for all 3", got)
	}
	for _, check := range []string{namePubSub, nameTraffic} {
		if res := only(t, r, check); res.Status != OK {
			t.Errorf("%s = %+v", check, res)
		}
	}
	if res := only(t, r, nameNodes); res.Status != OK || !strings.Contains(res.Message, "1 running node subscribed") {
		t.Errorf("nodes = %+v (PUBSUB CHANNELS of every node)", res)
	}
}

// TestMergeNodes checks how per-master lines are merged.
func TestMergeNodes(t *testing.T) {
	same := Result{Status: OK, Check: namePolicy, Message: "noeviction"}
	per := map[string][]Result{
		"a:1": {same, {Status: OK, Check: nameMemory, Message: "1 MiB"}},
		"b:2": {same, {Status: OK, Check: nameMemory, Message: "2 MiB"}},
	}
	got := mergeNodes([]string{"a:1", "b:2"}, per)
	want := []string{"all 2 masters: noeviction", "a:1: 1 MiB", "b:2: 2 MiB"}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].Message != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i].Message, want[i])
		}
	}
}

// checkNoSecret fails if the report shows secret.
func checkNoSecret(t *testing.T, r *Report, secret string) {
	t.Helper()
	var b strings.Builder
	_ = r.WriteText(&b)
	_ = r.WriteJSON(&b)
	if strings.Contains(b.String(), secret) {
		t.Errorf("the report shows the password:\n%s", b.String())
	}
}
