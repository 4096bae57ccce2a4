package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
)

// statusEvent is one line e2e/browser/status.mjs printed.
type statusEvent struct {
	Event           string `json:"event"`
	Message         string `json:"message"`
	Found           bool   `json:"found"`
	Delivered       int    `json:"delivered"`
	Bytes           int    `json:"bytes"`
	BroadcastText   string `json:"broadcastText"`
	RejectionReason string `json:"rejectionReason"`
	BrokerUp        string `json:"brokerUp"`
	Path            string `json:"path"`
}

// The live status page in a real browser: once it is live, a broadcast and
// a rejected subscription made during the test appear on it without a
// reload. A screenshot is kept in e2e/artifacts/status.png.
func TestStatusPageInRealBrowser(t *testing.T) {
	node := requireCommand(t, "node")
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium: %v; %s", err, installHint)
	}
	dir := repoDir(t, "e2e/browser")
	sc := startSidecar(t, nil, "dev")
	sub := jsclient.Start(t, jsclient.Options{
		URL:           "ws://" + sc.addr + "/cable",
		Subscriptions: []map[string]any{{"channel": "StreamChannel", "stream": "status-demo"}},
		Duration:      30 * time.Second,
	})
	waitEvent(t, sub, jsclient.KindConnected)

	artifacts, _ := filepath.Abs("artifacts")
	os.MkdirAll(artifacts, 0o755)
	shot := filepath.Join(artifacts, "status.png")
	os.Remove(shot)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "status.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PAGE_URL=http://"+sc.admin+"/", "USER_DATA_DIR="+t.TempDir(),
		"SCREENSHOT="+shot, "STREAM=status-demo", "REJECTED=NoSuchChannel", "CHROMIUM="+chromiumPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	var page *statusEvent
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		var ev statusEvent
		if json.Unmarshal(lines.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Event {
		case "ready": // the page is live: act now
			if o, err := run(t, nil, "publish", "--url", "http://"+sc.addr, "status-demo", `{"shown":"on the page"}`); err != nil {
				t.Fatalf("publish: %v: %s", err, o)
			}
			jsclient.Run(t, jsclient.Options{URL: "ws://" + sc.addr + "/cable", Duration: 5 * time.Second,
				Subscriptions: []map[string]any{{"channel": "NoSuchChannel"}},
				ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindRejected, Count: 1}})
		case "page":
			page = &ev
		case "error", "pageerror":
			t.Errorf("browser: %s", ev.Message)
		}
	}
	if page == nil || !page.Found {
		t.Fatalf("the page never showed the broadcast and the rejection: %+v", page)
	}
	if page.Delivered != 1 || page.Bytes != len(`{"shown":"on the page"}`) || page.RejectionReason != "unknown_channel" || page.BrokerUp != "true" {
		t.Errorf("page state %+v", page)
	}
	if _, err := os.Stat(shot); err != nil {
		t.Errorf("no screenshot: %v", err)
	}
}
