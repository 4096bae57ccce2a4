package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// `cablecar trace` shows each broadcast on a followed stream with how many
// subscribers the running sidecar reached, including 0 for a stream no one
// listens to.
func TestTraceShowsBroadcastsAndDeliveries(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + mustToken(t, env, "document:*")),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
		Duration:      15 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 1},
	})
	waitEvent(t, c, jsclient.KindConnected)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "trace", "--duration", "4s", "--channel", "DocumentChannel", "--gid", "Document:123", "document:nobody")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CABLECAR_ADMIN_ADDR=" + sc.admin}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := bufio.NewScanner(stderr)
	if !ready.Scan() || !strings.HasPrefix(ready.Text(), "tracing") {
		t.Fatalf("trace did not start: %q", ready.Text())
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	rdb.Publish(ctx, "myapp_production:document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz", `{"status":"complete","progress":100}`)
	rdb.Publish(ctx, "myapp_production:document:nobody", `{"lost":true}`)
	var lines []string
	sc2 := bufio.NewScanner(stdout)
	for sc2.Scan() {
		lines = append(lines, sc2.Text())
	}
	cmd.Wait()
	if len(lines) != 2 {
		t.Fatalf("trace printed %d lines, want 2:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, want := range [][]string{
		{"document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz", "36 B", "→ 1 subscriber", `{"status":"complete","progress":100}`},
		{"document:nobody", "13 B", "→ 0 subscribers", `{"lost":true}`},
	} {
		for _, part := range want {
			if !strings.Contains(lines[i], part) {
				t.Errorf("line %d %q lacks %q", i, lines[i], part)
			}
		}
	}
}
