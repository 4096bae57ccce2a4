package proxy

// Benchmarks for the hot path: frame encoding, hub fan-out over real
// loopback sockets, and the upgrade + subscribe round trip. Run with
//
//	go test -run '^$' -bench . -benchmem ./proxy
//
// docs/benchmarks.md records figures and what the profiles show.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/history"
)

const benchIdentifier = `{"channel":"BenchChannel","stream":"bench-0"}`

// BenchmarkMessageFrameSizes encodes one broadcast frame for a few payload
// sizes; BenchmarkMessageFrame (frame_test.go) is the small Turbo-like case.
func BenchmarkMessageFrameSizes(b *testing.B) {
	q := quoteIdentifier(benchIdentifier)
	for _, size := range []int{64, 1024, 16 << 10} {
		p := benchPayload(size)
		b.Run("payload="+strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				messageFrame(q, p)
			}
		})
	}
}

// benchPayload is a JSON object of about size bytes.
func benchPayload(size int) []byte {
	p := []byte(`{"status":"complete","pad":"`)
	for len(p) < size-2 {
		p = append(p, 'x')
	}
	return append(p, '"', '}')
}

// nopBroker accepts every subscription; the benchmark activates streams
// itself and calls deliver directly.
type nopBroker struct{}

func (nopBroker) Run(ctx context.Context, _ func(string, []byte), _ func(string)) error {
	<-ctx.Done()
	return nil
}
func (nopBroker) Subscribe(string)                              {}
func (nopBroker) Unsubscribe(string)                            {}
func (nopBroker) Publish(context.Context, string, []byte) error { return nil }
func (nopBroker) Health(context.Context) error                  { return nil }

// drain counts the bytes every client socket has read, so the benchmark
// can wait for its frames to arrive.
type drain struct {
	got  atomic.Int64
	want atomic.Int64
	more chan struct{} // capacity 1: got may have reached want
}

func (d *drain) read(nc net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := nc.Read(buf)
		if n > 0 && d.got.Add(int64(n)) >= d.want.Load() {
			select {
			case d.more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// await blocks until at least total bytes were read, or fails b after 10 s.
func (d *drain) await(b *testing.B, total int64) {
	d.want.Store(total)
	deadline := time.Now().Add(10 * time.Second)
	for d.got.Load() < total {
		if time.Now().After(deadline) {
			b.Fatalf("clients read %d bytes, want %d", d.got.Load(), total)
		}
		select {
		case <-d.more:
		case <-time.After(time.Millisecond):
		}
	}
}

// BenchmarkHubFanout delivers one broker message to N subscribers whose
// sockets are real loopback TCP connections drained by one reader each.
// An op is one hub.deliver plus the writes that put its frames on every
// socket. burst keeps up to 32 deliveries in flight, so flushes batch
// several frames per writev (a busy stream); sparse waits until every
// client has read each delivery, so every frame costs its own flusher and
// writev (the usual case: a few messages a second per stream).
// ns/delivery is wall time per subscriber; allocs/op counts server and
// reader goroutines alike.
func BenchmarkHubFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		for _, mode := range []struct {
			name   string
			window int
		}{{"burst", 32}, {"sparse", 1}} {
			b.Run("subs="+strconv.Itoa(n)+"/"+mode.name, func(b *testing.B) { benchFanout(b, n, mode.window, false) })
		}
	}
}

// BenchmarkHubFanoutRecorded is BenchmarkHubFanout for a stream with
// history, every subscriber on the extended protocol: the hub delivers
// the recorded copy (history.Annotate), each frame carries the position.
func BenchmarkHubFanoutRecorded(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run("subs="+strconv.Itoa(n)+"/sparse", func(b *testing.B) { benchFanout(b, n, 1, true) })
	}
}

func benchFanout(b *testing.B, subs, window int, recorded bool) {
	stream := "bench-0"
	if recorded {
		stream = history.InternalPrefix + stream
	}
	srv := &Server{cfg: Config{}.withDefaults(), log: slog.New(slog.DiscardHandler)}
	srv.hub = newHub(nopBroker{}, srv.log, &srv.stats, &srv.hooks)
	srv.hub.recorded = recorded
	srv.rawIOs.New = func() any { return newRawIO() } // as New and Serve do
	srv.writers = newWriterPool()
	srv.hub.writers = srv.writers
	wctx, stopWriters := context.WithCancel(context.Background())
	defer stopWriters()
	go srv.writers.run(wctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	d := &drain{more: make(chan struct{}, 1)}
	var conns []net.Conn
	var readers sync.WaitGroup
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		readers.Wait()
	}()
	quoted := quoteIdentifier(benchIdentifier)
	for i := range subs {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, client, server)
		readers.Add(1)
		go func() { defer readers.Done(); d.read(client) }()
		c := &conn{id: uint64(i + 1), nc: server, fd: socketFD(server), srv: srv, remote: client.LocalAddr().String(), since: time.Now().UnixNano()}
		sub := &subscription{conn: c, identifier: benchIdentifier, quoted: quoted, channel: "BenchChannel", streams: []string{stream}}
		if recorded {
			c.ext = true
			srv.hists.Store(sub, &subHistory{last: map[string]history.Position{}})
		}
		c.subs = map[string]*subscription{benchIdentifier: sub}
		srv.hub.addConn(c)
		srv.hub.subscribe(sub)
	}
	srv.hub.activate(stream) // queues confirm_subscription on every conn
	d.await(b, int64(subs*len(identifierFrame(quoted, "confirm_subscription"))))

	payload := []byte(`{"status":"complete","progress":100,"html":"<turbo-stream action=\"replace\"></turbo-stream>"}`)
	frameLen := int64(len(messageFrame(quoted, payload)))
	if recorded {
		// Offsets from 1,000,001 on: every frame has the same length.
		frameLen = int64(len(recordedFrame(quoted, payload, quoteIdentifier("bench-0"), history.Position{Epoch: "0123abcd", Offset: 1_000_001})))
	}
	base := d.got.Load()
	b.ReportAllocs()
	b.SetBytes(frameLen * int64(subs))
	b.ResetTimer()
	for i := range b.N {
		if recorded {
			srv.hub.deliver(stream, history.Annotate("0123abcd", uint64(1_000_001+i), payload))
		} else {
			srv.hub.deliver(stream, payload)
		}
		if (i+1)%window == 0 {
			d.await(b, base+int64(i+1-window/2)*int64(subs)*frameLen) // window/2 may still be on their way
		}
	}
	d.await(b, base+int64(b.N)*int64(subs)*frameLen)
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
	if s := srv.stats.DisconnectsSlow.Load(); s > 0 {
		b.Fatalf("%d subscribers disconnected as too_slow", s)
	}
}

// BenchmarkUpgradeSubscribe is one client's whole arrival on a real server
// (in-memory broker, anonymous, loopback): TCP connect, WebSocket upgrade,
// welcome, subscribe, confirm_subscription, then close. existing_stream
// joins a stream another connection keeps active; new_stream makes the
// broker subscribe first. Allocations include the client side.
func BenchmarkUpgradeSubscribe(b *testing.B) {
	a, err := auth.New(auth.Config{AllowAnonymous: true, Routes: "public:BenchChannel={params.stream}"})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{}, memory.New(), a, a, nil)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	}()
	url := "ws://" + ln.Addr().String() + "/cable"

	holder := benchArrive(b, url, benchIdentifier)
	defer holder.Close()
	b.Run("existing_stream", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchLeave(benchArrive(b, url, benchIdentifier))
		}
	})
	b.Run("new_stream", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			benchLeave(benchArrive(b, url, `{"channel":"BenchChannel","stream":"new-`+strconv.Itoa(i)+`"}`))
		}
	})
}

// benchArrive connects, waits for welcome, subscribes and waits for the
// confirmation.
func benchArrive(b *testing.B, url, identifier string) net.Conn {
	d := ws.Dialer{Protocols: []string{"actioncable-v1-json"}, Timeout: 5 * time.Second}
	nc, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	var r io.Reader = nc
	if br != nil {
		r = io.MultiReader(br, nc)
		defer ws.PutReader(br)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	benchExpect(b, r, `{"type":"welcome"}`)
	cmd, _ := json.Marshal(map[string]string{"command": "subscribe", "identifier": identifier})
	if err := ws.WriteFrame(nc, ws.MaskFrameInPlace(ws.NewTextFrame(cmd))); err != nil {
		b.Fatal(err)
	}
	benchExpect(b, r, string(identifierFrame(quoteIdentifier(identifier), "confirm_subscription")[2:]))
	// The welcome arrives with the 101, so the dialer's reader holds the
	// rest of the stream too: what it still buffers may only be pings.
	for br != nil && br.Buffered() > 0 {
		if p := benchFrame(b, br); !bytes.HasPrefix(p, []byte(`{"type":"ping"`)) {
			b.Fatalf("unread frame buffered by the dialer: %s", p)
		}
	}
	nc.SetDeadline(time.Time{})
	return nc
}

// benchExpect reads one frame (skipping pings) and checks its payload.
func benchExpect(b *testing.B, r io.Reader, want string) {
	for {
		p := benchFrame(b, r)
		if bytes.HasPrefix(p, []byte(`{"type":"ping"`)) {
			continue
		}
		if string(p) != want {
			b.Fatalf("got %s, want %s", p, want)
		}
		return
	}
}

// benchFrame reads one frame's payload.
func benchFrame(b *testing.B, r io.Reader) []byte {
	h, err := ws.ReadHeader(r)
	if err != nil {
		b.Fatal(err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		b.Fatal(err)
	}
	return p
}

// benchLeave resets the connection: no TIME_WAIT left to use up ports
// over a long benchmark.
func benchLeave(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	nc.Close()
}
