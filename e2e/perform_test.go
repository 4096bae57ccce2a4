package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// The perform issue's acceptance scenario: subscription.perform("speak", …)
// from the real @rails/actioncable client reaches a Python worker reading
// the Redis Stream (examples/python/perform_consumer.py, redis-py) with the
// action, the data as the page sent it, the identifier and the user.
func TestPerformReachesPythonStreamConsumer(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_CONNECTION_IDENTIFIER"] = "{gid:User:claims.sub}"
	env["CABLECAR_PERFORM_STREAM"] = "cable:actions"
	sc := startSidecar(t, env, "serve")
	tok := mustToken(t, env, "document:*")

	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + tok),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
		Duration:      10 * time.Second,
		Perform:       &jsclient.Perform{Index: 0, Action: "speak", Data: map[string]any{"body": "héllo <b>", "n": 2}},
	})
	connected := waitEvent(t, c, jsclient.KindConnected)
	sent, ok := c.WaitForFunc(func(e jsclient.Event) bool {
		return e.Event == jsclient.KindFrameOut && strings.Contains(e.Text(), `"command":"message"`)
	}, 10*time.Second)
	if !ok {
		t.Fatalf("the client never performed: %v", c.Snapshot())
	}

	out := runIn(t, repoDir(t, "examples/python"), []string{"REDIS_URL=" + rs.URL}, debianPython,
		"perform_consumer.py", "cable:actions", "--count", "1", "--block", "15000")
	var got struct {
		ID                   string         `json:"id"`
		Identifier           string         `json:"identifier"`
		Channel              string         `json:"channel"`
		Streams              []string       `json:"streams"`
		Action               string         `json:"action"`
		Data                 map[string]any `json:"data"`
		User                 string         `json:"user"`
		Claims               map[string]any `json:"claims"`
		ConnectionIdentifier string         `json:"connection_identifier"`
		Conn                 string         `json:"conn"`
		At                   string         `json:"at"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("consumer printed %q: %v", out, err)
	}
	var frame struct{ Identifier, Data string }
	if err := json.Unmarshal([]byte(sent.Text()), &frame); err != nil {
		t.Fatal(err)
	}
	if frame.Data != `{"body":"héllo <b>","n":2,"action":"speak"}` {
		t.Errorf("the client sent data %s; the test expects Rails' client to add action last", frame.Data)
	}
	if got.Identifier != connected.Identifier || got.Identifier != `{"channel":"DocumentChannel","id":123}` {
		t.Errorf("identifier %q, want the client's %q", got.Identifier, connected.Identifier)
	}
	if want := map[string]any{"body": "héllo <b>", "n": 2.0, "action": "speak"}; !reflect.DeepEqual(got.Data, want) {
		t.Errorf("data %v, want %v", got.Data, want)
	}
	if got.Action != "speak" || got.User != "42" || got.Channel != "DocumentChannel" {
		t.Errorf("action %q user %q channel %q, want speak, 42, DocumentChannel", got.Action, got.User, got.Channel)
	}
	if want := []string{"document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"}; !reflect.DeepEqual(got.Streams, want) {
		t.Errorf("streams %v, want %v", got.Streams, want)
	}
	if got.Claims["sub"] != "42" || got.ConnectionIdentifier != "Z2lkOi8vbXlhcHAvVXNlci80Mg" || got.Conn == "" || got.ID == "" {
		t.Errorf("claims %v, connection_identifier %q, conn %q, id %q", got.Claims, got.ConnectionIdentifier, got.Conn, got.ID)
	}
	if at, err := time.Parse(time.RFC3339Nano, got.At); err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Errorf("at %q (%v), want a recent RFC 3339 time", got.At, err)
	}

	// Counted once XADD returned, which may be a moment after the entry
	// could be read.
	for deadline := time.Now().Add(5 * time.Second); performMetric(t, sc.admin, `cablecar_performs_total{result="forwarded"}`) != "1" && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]string{"forwarded": "1", "dropped_full": "0", "failed": "0", "invalid": "0", "ignored": "0"}
	for result, n := range want {
		if v := performMetric(t, sc.admin, `cablecar_performs_total{result="`+result+`"}`); v != n {
			t.Errorf("cablecar_performs_total{result=%q} = %q, want %s", result, v, n)
		}
	}
}

// With CABLECAR_PERFORM_URL, the same perform arrives as a signed JSON POST
// that verifies with the shared secret.
func TestPerformReachesSignedHTTPHook(t *testing.T) {
	type request struct {
		body []byte
		sig  string
	}
	got := make(chan request, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{body, r.Header.Get("X-Cablecar-Signature")}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_PERFORM_URL"] = hook.URL + "/cable/actions"
	env["CABLECAR_PERFORM_SECRET"] = "hook-secret-for-tests"
	sc := startSidecar(t, env, "serve")
	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + mustToken(t, env, "document:*")),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
		Duration:      10 * time.Second,
		Perform:       &jsclient.Perform{Index: 0, Action: "speak", Data: map[string]any{"body": "hi"}},
	})
	waitEvent(t, c, jsclient.KindConnected)
	var req request
	select {
	case req = <-got:
	case <-time.After(15 * time.Second):
		t.Fatalf("no POST reached the hook; client: %v", c.Snapshot())
	}
	m := hmac.New(sha256.New, []byte("hook-secret-for-tests"))
	m.Write(req.body)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); req.sig != want {
		t.Errorf("signature %q, want %q", req.sig, want)
	}
	var body struct {
		Identifier, Action, User string
		Data                     json.RawMessage
	}
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	if body.Identifier != `{"channel":"DocumentChannel","id":123}` || body.Action != "speak" || body.User != "42" || string(body.Data) != `{"body":"hi","action":"speak"}` {
		t.Errorf("body %s", req.body)
	}
}

// Both targets set, or a stream without Redis, and cablecar refuses to start.
func TestPerformConfigErrors(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CABLECAR_REDIS_URL": "redis://127.0.0.1:1/0", "CABLECAR_PERFORM_STREAM": "a", "CABLECAR_PERFORM_URL": "http://127.0.0.1:1/"}, "are both set"},
		{map[string]string{"CABLECAR_PERFORM_STREAM": "a"}, "CABLECAR_PERFORM_STREAM needs the broker's Redis"},
	}
	for _, tc := range cases {
		tc.env["CABLECAR_ADDR"] = "127.0.0.1:0"
		tc.env["CABLECAR_ALLOW_ANONYMOUS"] = "true"
		tc.env["CABLECAR_ADMIN_ADDR"] = "off"
		out, err := run(t, tc.env, "serve")
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("env %v: err %v, output %q; want a failure saying %q", tc.env, err, out, tc.want)
		}
	}
}

// performMetric returns the value of one series from the admin listener's
// /metrics, "" when absent.
func performMetric(t *testing.T, admin, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
