package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

// TestReplayAfterConfirm: a route written "replay:" gets its streams' last
// job state right after confirm_subscription, as the same message frame a
// live broadcast makes; a route without it gets nothing.
func TestReplayAfterConfirm(t *testing.T) {
	store := jobs.NewMemoryStore(nopPublisher{}, time.Hour)
	state := `{"type":"job","backend":"sidekiq","job_id":"j1","class":"DocJob","status":"dead","at":"2026-12-04T14:00:00.000Z"}`
	if err := store.Commit(context.Background(), jobs.Sidekiq, "", 0, []jobs.Message{{Stream: "doc:1", Payload: []byte(state)}}, nil); err != nil {
		t.Fatal(err)
	}
	acfg := auth.Config{AllowAnonymous: true, Routes: "replay:public:DocChannel=doc:{params.id};public:PlainChannel=doc:{params.id}"}
	ts := startServer(t, proxy.Config{}, acfg, nil, func(s *proxy.Server, a *auth.Auth) {
		s.SetReplayer(&jobs.Replayer{Store: store, OptsIn: a.Replays})
	})
	c := welcomed(t, ts.url(""))
	replayed := `{"channel":"DocChannel","id":"1"}`
	c.command("subscribe", replayed)
	if got := c.nextText(); got != confirmFrame(replayed) {
		t.Fatalf("got %s, want confirm", got)
	}
	if got := c.nextText(); got != messageFrame(replayed, state) {
		t.Fatalf("got  %s\nwant %s", got, messageFrame(replayed, state))
	}
	plain := `{"channel":"PlainChannel","id":"1"}`
	c.command("subscribe", plain)
	if got := c.nextText(); got != confirmFrame(plain) {
		t.Fatalf("got %s, want confirm", got)
	}
	c.expectNothing(300 * time.Millisecond)
	other := `{"channel":"DocChannel","id":"2"}` // no state kept for doc:2
	c.command("subscribe", other)
	if got := c.nextText(); got != confirmFrame(other) {
		t.Fatalf("got %s, want confirm", got)
	}
	c.expectNothing(300 * time.Millisecond)
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, []byte) error { return nil }
