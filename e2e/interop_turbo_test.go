package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/internal/logbuf"
	"github.com/cablecar/cablecar/internal/redistest"
)

// chromiumPath is Debian's Chromium; scripts/install-test-deps installs it.
const chromiumPath = "/usr/bin/chromium"

// turboSecretKeyBase is the secret_key_base of the Turbo vectors in
// docs/actioncable-protocol.md §5.4.
const turboSecretKeyBase = "test-secret-key-base-0123456789abcdef"

// browserEvent is one line e2e/browser/turbo.mjs printed.
type browserEvent struct {
	Event        string   `json:"event"`
	Message      string   `json:"message"`
	Fatal        bool     `json:"fatal"`
	URL          string   `json:"url"`
	Data         string   `json:"data"`
	Type         string   `json:"type"`
	Text         string   `json:"text"`
	Rejected     bool     `json:"rejected"`
	Arrived      bool     `json:"arrived"`
	MessagesHTML string   `json:"messagesHTML"`
	MessagesText string   `json:"messagesText"`
	Paragraphs   int      `json:"paragraphs"`
	Connected    []string `json:"connected"`
	Path         string   `json:"path"`
}

// Turbo in a real browser: headless Chromium loads a page with turbo-rails'
// own JavaScript bundle (from npm, served by the test) and a
// <turbo-cable-stream-source> signed as turbo-rails signs it, pointed at
// cablecar by <meta name="action-cable-url">. Once the element is connected,
// the real Ruby Action Cable broadcasts what
// Turbo::StreamsChannel.broadcast_append_to("lobby", …) publishes, and the
// page's DOM must change. A second element with a forged signature must be
// rejected. A screenshot is kept in e2e/artifacts/turbo.png.
func TestTurboStreamInRealBrowser(t *testing.T) {
	node := requireCommand(t, "node")
	ruby := requireCommand(t, "ruby")
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium: %v; %s", err, installHint)
	}
	turboDir := repoDir(t, "e2e/browser")
	bundle := filepath.Join(turboDir, "node_modules", "@hotwired", "turbo-rails", "app", "assets", "javascripts", "turbo.js")
	for _, f := range []string{bundle, filepath.Join(turboDir, "node_modules", "playwright-core", "package.json")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v; %s", err, installHint)
		}
	}

	// turbo_stream_from "lobby", signed with the key a Rails 7+ app derives.
	signed := auth.SignStreamName(auth.TurboKey(turboSecretKeyBase, false), "lobby")
	if want := "ImxvYmJ5Ig==--c2d88537188be15810bafe8f0034c184dcd3c05663d518abdc27f4fe9b7a7836"; signed != want {
		t.Fatalf("signed stream name %s, want turbo-rails' %s", signed, want)
	}
	forged := signed[:len(signed)-1] + "0" // last hex digit changed ("6" → "0")

	// The app's page server, on its own port: the cable is cross-origin.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_TURBO_SECRET_KEY_BASE"] = turboSecretKeyBase
	env["CABLECAR_ALLOWED_ORIGINS"] = origin
	sc := startSidecar(t, env, "serve")
	page := template.Must(template.ParseFiles(filepath.Join(turboDir, "index.html")))
	cableURL := sc.wsURL("token=" + mustToken(t, env, "document:*"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, map[string]string{"CableURL": cableURL, "SignedStreamName": signed, "ForgedStreamName": forged}); err != nil {
			t.Errorf("page: %v", err)
		}
	})
	mux.HandleFunc("GET /turbo.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, bundle)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	artifacts, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	screenshot := filepath.Join(artifacts, "turbo.png")
	os.Remove(screenshot)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "turbo.mjs")
	cmd.Dir = turboDir
	cmd.Env = append(os.Environ(),
		"PAGE_URL="+origin+"/",
		"USER_DATA_DIR="+t.TempDir(),
		"SCREENSHOT="+screenshot,
		"CHROMIUM="+chromiumPath,
		"TIMEOUT_MS=15000",
	)
	var stderr logbuf.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = interopSysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan browserEvent)
	go func() {
		defer close(events)
		scanner := bufio.NewScanner(stdout)
		scanner.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for scanner.Scan() {
			var ev browserEvent
			if err := json.Unmarshal(scanner.Bytes(), &ev); err != nil {
				ev = browserEvent{Event: "error", Message: "not an event: " + scanner.Text(), Fatal: true}
			}
			events <- ev
		}
	}()

	var all []browserEvent
	var state *browserEvent
	for ev := range events {
		all = append(all, ev)
		switch ev.Event {
		case "ready":
			t.Logf("page connected after %v", time.Since(started).Round(time.Millisecond))
			if !ev.Rejected {
				t.Errorf("the forged signed-stream-name was not rejected")
			}
			// Ruby's Action Cable publishes the Turbo Stream into Redis.
			runIn(t, turboDir, []string{"REDIS_URL=" + rs.URL}, ruby, "broadcast.rb")
		case "page":
			ev := ev
			state = &ev
		case "error", "pageerror":
			t.Errorf("browser: %s %s", ev.Event, ev.Message)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("browser driver: %v", err)
	}
	if t.Failed() || state == nil {
		t.Logf("browser events: %+v\nbrowser stderr:\n%s", all, stderr.String())
	}
	if state == nil {
		t.Fatalf("the browser driver reported no page state")
	}
	t.Logf("browser run took %v; screenshot %s", time.Since(started).Round(time.Millisecond), screenshot)

	// The DOM changed as Turbo applies <turbo-stream action="append">: one
	// <p>, its entity decoded by the HTML parser.
	if !state.Arrived || state.Paragraphs != 1 || state.MessagesHTML != "<p>Hello &amp; welcome</p>" || state.MessagesText != "Hello & welcome" {
		t.Errorf("#messages after the broadcast: %d <p>, HTML %q, text %q; want exactly <p>Hello &amp; welcome</p>",
			state.Paragraphs, state.MessagesHTML, state.MessagesText)
	}
	if strings.Join(state.Connected, ",") != "lobby" {
		t.Errorf("connected stream sources %v, want only the signed one (lobby)", state.Connected)
	}

	// The browser got Ruby's bytes unchanged, in the frame Rails would send.
	identifier, _ := json.Marshal(`{"channel":"Turbo::StreamsChannel","signed_stream_name":"` + signed + `"}`)
	wantFrame := `{"identifier":` + string(identifier) + `,"message":` +
		`"\u003cturbo-stream action=\"append\" target=\"messages\"\u003e\u003ctemplate\u003e\u003cp\u003eHello \u0026amp; welcome\u003c/p\u003e\u003c/template\u003e\u003c/turbo-stream\u003e"}`
	var frames []string
	for _, ev := range all {
		if ev.Event == "frame_in" && !strings.Contains(ev.Data, `"type":"ping"`) {
			frames = append(frames, ev.Data)
		}
	}
	if !containsString(frames, wantFrame) {
		t.Errorf("no frame equal to\n  %s\namong\n  %s", wantFrame, strings.Join(frames, "\n  "))
	}

	// Only the page server was asked for anything.
	for _, ev := range all {
		if ev.Event == "request" && !strings.HasPrefix(ev.URL, origin+"/") {
			t.Errorf("the page requested %s", ev.URL)
		}
	}
	if logs := sc.logs(); !strings.Contains(logs, "subscription rejected") || !strings.Contains(logs, "Turbo::StreamsChannel") {
		t.Errorf("cablecar did not log the forged name's rejection:\n%s", logs)
	}

	png, err := os.ReadFile(screenshot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot %s: %v (%d bytes)", screenshot, err, len(png))
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
