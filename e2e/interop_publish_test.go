package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// Publishing from other languages: examples/python, examples/node and
// examples/shell each compute DocumentChannel's broadcasting for a Document
// (the GlobalID param of its id) and publish; the real JS client,
// subscribed through cablecar, must receive each message on the right
// subscription. The ids need escaping ("a b/c" → "a+b%2Fc"; the second one
// has the characters where CGI.escape and encodeURIComponent differ, and a
// non-ASCII one), and the names each script prints must equal what the real
// Ruby Action Cable computes.

var publishIDs = []string{"a b/c", "naïve ~*'(x)!"}

// publishTarget is a running cablecar with the real JS client subscribed to
// DocumentChannel for each of publishIDs.
type publishTarget struct {
	rs      *redistest.Server
	sc      *sidecar
	client  *jsclient.Client
	streams []string // the Rails broadcasting for each id, from Ruby
}

const broadcastKey = "bk-interop-0123456789"

func startPublishTarget(t *testing.T) *publishTarget {
	t.Helper()
	p := &publishTarget{rs: redistest.Start(t)}
	env := documentEnv(p.rs.URL)
	env["CABLECAR_BROADCAST_KEY"] = broadcastKey
	p.sc = startSidecar(t, env, "serve")
	var subs []map[string]any
	for _, id := range publishIDs {
		subs = append(subs, map[string]any{"channel": "DocumentChannel", "id": id})
	}
	p.client = jsclient.Start(t, jsclient.Options{
		URL:           p.sc.wsURL("token=" + mustToken(t, env, "document:*")),
		Subscriptions: subs,
		Duration:      10 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: len(publishIDs)},
	})
	p.streams = railsBroadcastings(t, publishIDs...)
	waitConnected(t, p.client, len(publishIDs))
	return p
}

// message is what the publisher from sends for publishIDs[i].
func (p *publishTarget) message(from string, i int) string {
	b, err := json.Marshal(struct {
		Status   string `json:"status"`
		Document string `json:"document"`
		From     string `json:"from"`
	}{"complete", publishIDs[i], from})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkOutput fails t unless a script's output names the Rails stream for
// publishIDs[i].
func (p *publishTarget) checkOutput(t *testing.T, out string, i int) {
	t.Helper()
	if !strings.Contains(out, p.streams[i]) {
		t.Errorf("the script for id %q printed %q; Rails' broadcasting is %s", publishIDs[i], out, p.streams[i])
	}
}

// check waits for the client and fails t unless subscription i got exactly
// message(from, i).
func (p *publishTarget) check(t *testing.T, from string) {
	t.Helper()
	events := p.client.Wait()
	for i, id := range publishIDs {
		got := receivedBy(events, i)
		if len(got) != 1 || !sameJSON(got[0], p.message(from, i)) {
			t.Errorf("subscription to Document %q received %v, want exactly %s", id, got, p.message(from, i))
		}
	}
}

func TestPublishFromPython(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s: %v; %s", debianPython, err, installHint)
	}
	p := startPublishTarget(t)
	dir := repoDir(t, "examples/python")
	for i, id := range publishIDs {
		out := runIn(t, dir, []string{"REDIS_URL=" + p.rs.URL}, debianPython, "publish.py", id, p.message("python", i))
		p.checkOutput(t, out, i)
		if !strings.HasSuffix(strings.TrimSpace(out), " 1") {
			t.Errorf("publish.py printed %q, want 1 receiver (cablecar)", out)
		}
	}
	p.check(t, "python")
}

func TestPublishFromNode(t *testing.T) {
	node := requireCommand(t, "node")
	dir := repoDir(t, "examples/node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "redis", "package.json")); err != nil {
		t.Fatalf("the redis package is not installed in %s: %v; %s", dir, err, installHint)
	}
	p := startPublishTarget(t)
	for i, id := range publishIDs {
		out := runIn(t, dir, []string{"REDIS_URL=" + p.rs.URL}, node, "publish.mjs", id, p.message("node", i))
		p.checkOutput(t, out, i)
		if !strings.HasSuffix(strings.TrimSpace(out), " 1") {
			t.Errorf("publish.mjs printed %q, want 1 receiver (cablecar)", out)
		}
	}
	p.check(t, "node")
}

func TestPublishFromShell(t *testing.T) {
	requireCommand(t, "redis-cli")
	requireCommand(t, "curl")
	script := filepath.Join(repoDir(t, "examples/shell"), "publish.sh")
	t.Run("redis-cli", func(t *testing.T) {
		p := startPublishTarget(t)
		for i, id := range publishIDs {
			out := runIn(t, t.TempDir(), []string{"REDIS_URL=" + p.rs.URL}, script, "redis", id, p.message("redis-cli", i))
			p.checkOutput(t, out, i)
			if lines := strings.Fields(out); lines[len(lines)-1] != "1" {
				t.Errorf("publish.sh printed %q, want 1 receiver (cablecar)", out)
			}
		}
		p.check(t, "redis-cli")
	})
	t.Run("curl to /_broadcast", func(t *testing.T) {
		p := startPublishTarget(t)
		for i, id := range publishIDs {
			out := runIn(t, t.TempDir(), []string{"CABLECAR_URL=http://" + p.sc.addr, "CABLECAR_BROADCAST_KEY=" + broadcastKey},
				script, "http", id, p.message("curl", i))
			p.checkOutput(t, out, i)
			if !strings.Contains(out, `{"delivered_to_broker":1}`) {
				t.Errorf("publish.sh printed %q, want cablecar's 202 answer", out)
			}
		}
		p.check(t, "curl")
	})
}
