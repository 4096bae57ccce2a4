package solidcable

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
)

// TestSolidCableChannelHash checks ChannelHash against values Ruby computed with
// Solid Cable's formula (testdata/channel_hash.tsv), and against a live
// /usr/bin/ruby for channels made up now.
func TestSolidCableChannelHash(t *testing.T) {
	for channel, want := range rubyHashes(t) {
		if got := ChannelHash(channel); got != want {
			t.Errorf("ChannelHash(%q) = %d, want %d (Ruby)", channel, got, want)
		}
	}
	live := []string{fmt.Sprintf("live:%d", time.Now().UnixNano()), "chat_" + strings.Repeat("é", 40)}
	out, err := exec.Command("/usr/bin/ruby", "-rdigest", "-e",
		`ARGV.each { |c| puts Digest::SHA256.digest(c).unpack1("q>") }`, live[0], live[1]).Output()
	if err != nil {
		t.Fatalf("/usr/bin/ruby (install Debian's ruby): %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(live) {
		t.Fatalf("ruby printed %q", out)
	}
	for i, c := range live {
		if got := strconv.FormatInt(ChannelHash(c), 10); got != lines[i] {
			t.Errorf("ChannelHash(%q) = %s, Ruby says %s", c, got, lines[i])
		}
	}
}

// TestSolidCableOnEachDatabase runs each check below on each real database, one server
// per database and a fresh table per check.
func TestSolidCableOnEachDatabase(t *testing.T) {
	checks := []struct {
		name string
		run  func(*testing.T, *fixture)
	}{
		{"Contract", testContract},
		{"DeliverWhatRailsInserts", testDeliverWhatRailsInserts},
		{"PublishWritesLikeSolidCable", testPublishWritesLikeSolidCable},
		{"OnePollQueryForAnyNumberOfStreams", testOnePollQueryForAnyNumberOfStreams},
		{"TwoBrokersOneDatabase", testTwoBrokersOneDatabase},
		{"MissingTable", testMissingTable},
		{"Trim", testTrim},
		{"PollLag", testPollLag},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			f := be.start(t)
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					f.reset(t)
					c.run(t, f)
				})
			}
		})
	}
}

// testContract runs the contract every broker passes.
func testContract(t *testing.T, f *fixture) {
	brokertest.Contract(t, func(tb testing.TB) brokertest.Broker {
		return newTestBroker(tb, f, brokerOpts{})
	}, settle)
}

// testDeliverWhatRailsInserts inserts rows the way Solid Cable does, from
// another connection and with Ruby's channel_hash, and checks the exact
// payloads arrive under the stream name, prefix or not; rows from before
// the subscription, of other channels and of another prefix are not
// delivered, nor a row of another channel that carries the same hash.
func testDeliverWhatRailsInserts(t *testing.T, f *fixture) {
	hashes := rubyHashes(t)
	for _, prefix := range []string{"", "myapp_production"} {
		t.Run(fmt.Sprintf("prefix=%q", prefix), func(t *testing.T) {
			const stream = "chat:room:lobby"
			channel := stream
			if prefix != "" {
				channel = prefix + ":" + stream
			}
			hash, ok := hashes[channel]
			if !ok {
				t.Fatalf("no Ruby vector for %q", channel)
			}
			f.insert(t, channel, hash, []byte(`"before the subscription"`))
			b := newTestBroker(t, f, brokerOpts{prefix: prefix})
			r := brokertest.NewRecorder(t)
			r.Start(t, b)
			b.Subscribe(stream)
			brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives(stream) == 1 })

			turbo := []byte(`"\u003cturbo-stream action=\"remove\" target=\"document_123\"\u003e\u003c/turbo-stream\u003e"`)
			f.insert(t, channel, hash, turbo)
			f.insert(t, "otherapp:"+stream, ChannelHash("otherapp:"+stream), []byte(`"other prefix"`))
			f.insert(t, "x:y:z:", hashes["x:y:z:"], []byte(`"other channel"`))
			f.insert(t, "impostor", hash, []byte(`"same hash, other channel"`))
			big := bytes.Repeat([]byte("ü"), 100_000) // beyond NOTIFY's 8 kB
			f.insert(t, channel, hash, big)
			if got := r.WaitMessage(t, stream, 1, settle); !bytes.Equal(got, turbo) {
				t.Errorf("message 1 = %q, want %q", got, turbo)
			}
			if got := r.WaitMessage(t, stream, 2, settle); !bytes.Equal(got, big) {
				t.Errorf("message 2: %d bytes, want the %d inserted", len(got), len(big))
			}
			// A last row proves the poll passed the skipped ones.
			f.insert(t, channel, hash, []byte(`{"last":true}`))
			r.WaitMessage(t, stream, 3, settle)
			if got := r.Messages(stream); len(got) != 3 || string(got[2]) != `{"last":true}` {
				t.Errorf("messages = %q, want exactly the 3 inserted after active", got)
			}
			if got := r.Streams(); len(got) != 1 {
				t.Errorf("deliver called for %q, want only %q", got, stream)
			}
		})
	}
}

// testPublishWritesLikeSolidCable publishes and reads the row back: the
// channel with its prefix, Ruby's hash, the exact payload, and created_at
// in Active Record's UTC form.
func testPublishWritesLikeSolidCable(t *testing.T, f *fixture) {
	hashes := rubyHashes(t)
	b := newTestBroker(t, f, brokerOpts{prefix: "myapp_production"})
	before := time.Now().UTC().Add(-time.Second)
	payload := []byte{'"', 0, 0xff, '"'}
	if err := b.Publish(context.Background(), "chat:room:lobby", payload); err != nil {
		t.Fatal(err)
	}
	var channel, got []byte
	var hash int64
	var created string
	q := "SELECT channel, payload, channel_hash, " + createdText(f.kind) + " FROM " + table
	if err := f.raw.QueryRow(q).Scan(&channel, &got, &hash, &created); err != nil {
		t.Fatal(err)
	}
	if string(channel) != "myapp_production:chat:room:lobby" || !bytes.Equal(got, payload) {
		t.Errorf("row = %q, %q", channel, got)
	}
	if want := hashes["myapp_production:chat:room:lobby"]; hash != want {
		t.Errorf("channel_hash = %d, want Ruby's %d", hash, want)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$`).MatchString(created) {
		t.Errorf("created_at = %q, want Active Record's form", created)
	}
	at, err := time.Parse(timeLayout, created)
	if err != nil || at.Before(before) || at.After(time.Now().UTC().Add(time.Second)) {
		t.Errorf("created_at = %q (%v), want about now in UTC", created, err)
	}
}

// createdText selects created_at as text in the database's own form.
func createdText(k kind) string {
	switch k {
	case kindPostgres:
		return `to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US')`
	case kindMySQL:
		return `DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f')`
	}
	return "created_at"
}

// testOnePollQueryForAnyNumberOfStreams counts the statements the broker
// sends (in a wrapping driver) and checks each poll is exactly one query,
// whether 1 or 1,000 streams are subscribed, once they are active.
func testOnePollQueryForAnyNumberOfStreams(t *testing.T, f *fixture) {
	for _, n := range []int{1, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			var c queryCounter
			b := newTestBroker(t, f, brokerOpts{counter: &c})
			type snap struct{ polls, maxIDs, other int64 }
			snaps := make(chan snap, 1000)
			b.afterPoll = func(err error) {
				if err == nil {
					snaps <- snap{c.polls.Load(), c.maxIDs.Load(), c.other.Load()}
				}
			}
			r := brokertest.NewRecorder(t)
			for i := range n {
				b.Subscribe(fmt.Sprintf("s:%d", i))
			}
			r.Start(t, b)
			brokertest.WaitFor(t, settle, "all active", func() bool {
				for i := range n {
					if r.Actives(fmt.Sprintf("s:%d", i)) == 0 {
						return false
					}
				}
				return true
			})
			last := fmt.Sprintf("s:%d", n-1)
			id := f.insert(t, last, ChannelHash(last), []byte(`"x"`))
			r.WaitMessage(t, last, 1, settle)
			// Discard polls up to now, then compare neighbours.
			for len(snaps) > 0 {
				<-snaps
			}
			prev := <-snaps
			for range 5 {
				cur := <-snaps
				if d := (snap{cur.polls - prev.polls, cur.maxIDs - prev.maxIDs, cur.other - prev.other}); d != (snap{1, 0, 0}) {
					t.Errorf("one poll with %d streams sent %d poll queries, %d max-id queries, %d others; want exactly 1 poll query",
						n, d.polls, d.maxIDs, d.other)
				}
				prev = cur
			}
			if id <= 0 {
				t.Errorf("insert id %d", id)
			}
		})
	}
}

// testTwoBrokersOneDatabase runs two brokers, as two cablecar nodes, over
// one database: each delivers every message once to its own subscribers.
func testTwoBrokersOneDatabase(t *testing.T, f *fixture) {
	a, b := newTestBroker(t, f, brokerOpts{}), newTestBroker(t, f, brokerOpts{})
	ra, rb := brokertest.NewRecorder(t), brokertest.NewRecorder(t)
	ra.Start(t, a)
	rb.Start(t, b)
	a.Subscribe("shared")
	a.Subscribe("only-a")
	b.Subscribe("shared")
	brokertest.WaitFor(t, settle, "active", func() bool {
		return ra.Actives("shared") == 1 && ra.Actives("only-a") == 1 && rb.Actives("shared") == 1
	})
	var want [][]byte
	for i := range 30 {
		p := fmt.Appendf(nil, `{"n":%d}`, i)
		want = append(want, p)
		var err error
		switch i % 3 {
		case 0:
			err = a.Publish(context.Background(), "shared", p)
		case 1:
			err = b.Publish(context.Background(), "shared", p)
		default:
			f.insert(t, "shared", ChannelHash("shared"), p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(context.Background(), "only-a", []byte(`"a"`)); err != nil {
		t.Fatal(err)
	}
	ra.WaitMessage(t, "only-a", 1, settle)
	for name, r := range map[string]*brokertest.Recorder{"a": ra, "b": rb} {
		r.WaitMessage(t, "shared", len(want), settle)
		if got := r.Messages("shared"); len(got) != len(want) {
			t.Errorf("node %s: %d messages, want %d", name, len(got), len(want))
		} else {
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("node %s: message %d = %q, want %q (in order)", name, i, got[i], want[i])
				}
			}
		}
	}
	if got := rb.Messages("only-a"); len(got) != 0 {
		t.Errorf("node b delivered %q on a stream it never subscribed", got)
	}
}

// TestSolidCablePostgresRestart kills PostgreSQL under a running broker: Health names
// the outage, it is logged once, and rows inserted after the restart but
// before the broker polls again are all delivered, from the last id read.
func TestSolidCablePostgresRestart(t *testing.T) {
	f := startPostgres(t)
	logs := &logRecorder{}
	b := newTestBroker(t, f, brokerOpts{log: slog.New(logs)})
	// pauses holds the poll loop after a failed poll, until released.
	type pause struct{ reached, release chan struct{} }
	pauses := make(chan pause, 1)
	failures := make(chan struct{}, 100)
	b.afterPoll = func(err error) {
		if err == nil {
			return
		}
		select {
		case failures <- struct{}{}:
		default:
		}
		select {
		case p := <-pauses:
			close(p.reached)
			<-p.release
		default:
		}
	}
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	b.Subscribe("s")
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("s") == 1 })
	if err := b.Publish(context.Background(), "s", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	r.WaitMessage(t, "s", 1, settle)

	f.pg.Kill()
	var herr error
	brokertest.WaitFor(t, settle, "Health to fail", func() bool {
		herr = b.Health(context.Background())
		return herr != nil
	})
	if !strings.HasPrefix(herr.Error(), "solid_cable: database unreachable (127.0.0.1:") {
		t.Errorf("Health while PostgreSQL is down = %q", herr)
	}
	if err := b.Publish(context.Background(), "s", []byte(`"lost"`)); err == nil {
		t.Error("Publish while PostgreSQL is down = nil, want an error")
	}
	// Let a few polls fail, then hold the loop after a failure.
	for range 3 {
		<-failures
	}
	p := pause{make(chan struct{}), make(chan struct{})}
	pauses <- p
	<-p.reached
	f.pg.Restart(t)
	f.reconnect(t)
	for i := 2; i <= 4; i++ {
		f.insert(t, "s", ChannelHash("s"), []byte(strconv.Itoa(i)))
	}
	close(p.release)
	for i := 2; i <= 4; i++ {
		if got := r.WaitMessage(t, "s", i, settle); string(got) != strconv.Itoa(i) {
			t.Errorf("message %d after restart = %q", i, got)
		}
	}
	brokertest.WaitFor(t, settle, "Health nil again", func() bool { return b.Health(context.Background()) == nil })
	if err := b.Publish(context.Background(), "s", []byte(`5`)); err != nil {
		t.Fatal(err)
	}
	r.WaitMessage(t, "s", 5, settle)
	if got := r.Messages("s"); len(got) != 5 {
		t.Errorf("messages = %q, want 1..5 once each", got)
	}
	if got := logs.matching("database unreachable"); len(got) != 1 {
		t.Errorf("outage logged %d times, want once: %q", len(got), got)
	}
	if got := logs.matching("polling works again"); len(got) != 1 {
		t.Errorf("recovery logged %d times, want once: %q", len(got), got)
	}
	if got := b.Stats().Reconnects; got != 1 {
		t.Errorf("Stats().Reconnects = %d, want 1", got)
	}
}

// TestSolidCableLateCommit makes two writers commit out of id order on PostgreSQL:
// a transaction takes an id and commits after a later id was delivered.
// The row is delivered once it commits, and nothing twice.
func TestSolidCableLateCommit(t *testing.T) {
	f := startPostgres(t)
	b := newTestBroker(t, f, brokerOpts{})
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	b.Subscribe("s")
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("s") == 1 })
	tx, err := f.raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var early int64
	if err := tx.QueryRow(database{kind: kindPostgres}.insertQuery()+" RETURNING id",
		time.Now().UTC().Format(timeLayout), []byte("s"), []byte(`"early id, late commit"`), ChannelHash("s")).Scan(&early); err != nil {
		t.Fatal(err)
	}
	late := f.insert(t, "s", ChannelHash("s"), []byte(`"later id, committed first"`))
	if late <= early {
		t.Fatalf("ids %d then %d: want the second larger", early, late)
	}
	r.WaitMessage(t, "s", 1, settle)
	// Let the poll pass the later id before the early one commits.
	polls := b.Stats().Polls
	brokertest.WaitFor(t, settle, "two more polls", func() bool { return b.Stats().Polls >= polls+2 })
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, "s", 2, settle); string(got) != `"early id, late commit"` {
		t.Errorf("message 2 = %q", got)
	}
	f.insert(t, "s", ChannelHash("s"), []byte(`"last"`))
	r.WaitMessage(t, "s", 3, settle)
	time.Sleep(3 * pollEvery) // a duplicate would show up by now
	if got := r.Messages("s"); len(got) != 3 {
		t.Errorf("messages = %q, want 3, each once", got)
	}
}

// testPollLag delivers a row whose created_at is an hour old and checks
// Stats: the lag is that hour (read back through the database's own
// timestamp type), and the time spent polling counts up.
func testPollLag(t *testing.T, f *fixture) {
	b := newTestBroker(t, f, brokerOpts{})
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	b.Subscribe("s")
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("s") == 1 })
	if got := b.Stats().Lag; got != 0 {
		t.Errorf("Lag before any delivery = %v, want 0", got)
	}
	f.insertAt(t, "s", ChannelHash("s"), []byte(`"old"`), time.Now().Add(-time.Hour))
	r.WaitMessage(t, "s", 1, settle)
	// The poll records its lag after it delivers: wait for that.
	brokertest.WaitFor(t, settle, "lag recorded", func() bool { return b.Stats().Lag != 0 })
	st := b.Stats()
	if st.Lag < time.Hour || st.Lag > time.Hour+settle {
		t.Errorf("Lag = %v, want an hour (and under %v more)", st.Lag, settle)
	}
	if st.PollTime <= 0 || st.Polls == 0 {
		t.Errorf("PollTime = %v over %d polls, want some", st.PollTime, st.Polls)
	}
}
