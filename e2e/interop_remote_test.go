package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// Remote disconnect as Rails does it: the real Ruby
// ActionCable.server.remote_connections.where(current_user: User 42).disconnect
// closes every connection of user 42 with reason "remote" (reconnect true
// by default); user 7 stays connected.
func TestInteropRemoteDisconnectFromRuby(t *testing.T) {
	ruby := requireCommand(t, "ruby")
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_CONNECTION_IDENTIFIER"] = "{gid:User:claims.sub}"
	sc := startSidecar(t, env, "serve")
	token := func(sub string) string {
		tok, err := run(t, env, "token", "--sub", sub, "--streams", "document:*")
		if err != nil {
			t.Fatalf("token: %v %s", err, tok)
		}
		return tok
	}
	opts := func(sub string) jsclient.Options {
		// Long enough for Ruby to boot and broadcast on a loaded machine.
		return jsclient.Options{URL: sc.wsURL("token=" + token(sub)), Duration: 12 * time.Second,
			Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}}}
	}
	u42, u7 := jsclient.Start(t, opts("42")), jsclient.Start(t, opts("7"))
	waitEvent(t, u42, jsclient.KindConnected)
	waitEvent(t, u7, jsclient.KindConnected)

	runIn(t, repoDir(t, "e2e/ruby"), []string{"REDIS_URL=" + rs.URL}, ruby, "remote_disconnect.rb", "42")

	_, ok := u42.WaitForFunc(func(e jsclient.Event) bool {
		return e.Event == jsclient.KindFrameIn && e.Text() == `{"type":"disconnect","reason":"remote","reconnect":true}`
	}, 10*time.Second)
	if !ok {
		t.Fatalf("user 42 got no remote disconnect: %v", u42.Snapshot())
	}
	if d, ok := u42.WaitFor(jsclient.KindDisconnected, 5*time.Second); !ok || !d.WillAttemptReconnect {
		t.Errorf("user 42 disconnected event %+v (found %v), want willAttemptReconnect", d, ok)
	}
	for _, e := range jsclient.Filter(u7.Wait(), jsclient.KindFrameIn) {
		if strings.Contains(e.Text(), `"type":"disconnect"`) {
			t.Errorf("user 7 was disconnected too: %s", e.Text())
		}
	}
	if n := len(jsclient.Filter(u7.Snapshot(), jsclient.KindWSOpen)); n != 1 {
		t.Errorf("user 7 opened %d sockets, want 1", n)
	}
}
