package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// Issue #6 item 1: Redis unreachable for minutes, with the real binary.
//
// The outage lasts defaultRedisOutage; CABLECAR_REDIS_OUTAGE (a Go duration)
// makes it longer for the documented long run, e.g.
//
//	CABLECAR_REDIS_OUTAGE=10m go test -race -count=1 -timeout 20m -run TestRedisOutageForMinutes -v ./e2e/

// defaultRedisOutage spans many reconnect attempts at the 5 s backoff cap
// while keeping CI's e2e package within its timeout.
const defaultRedisOutage = 75 * time.Second

const (
	outageStreams      = 4
	outageClients      = 12 // raw WebSocket clients, spread over outageStreams
	outageRoute        = "public:OutageChannel={params.stream}"
	outagePublishEvery = 200 * time.Millisecond // one message to every stream per tick
	// pingInterval is CABLECAR_PING_INTERVAL's default.
	pingInterval = 3 * time.Second
	// staleThreshold is @rails/actioncable's ConnectionMonitor.staleThreshold:
	// a client that hears nothing for this long reconnects.
	staleThreshold = 6 * time.Second
	// maxRedisLogLines bounds the warn/error lines about Redis over the
	// whole run: "subscriber connection lost" once, and one to spare. It
	// must not grow with the outage or the number of clients.
	maxRedisLogLines = 2
)

// TestRedisOutageForMinutes kills redis-server (kill -9) under subscribed
// clients while broadcasts flow, keeps it down for the whole outage, then
// restarts it empty on the same port. Throughout, the process stays up, every
// client stays connected and keeps getting pings, /health says 503 with the
// reason and then 200 again, every live stream is resubscribed, messages
// published after recovery reach every client, and the log tells the story
// in a fixed number of lines.
func TestRedisOutageForMinutes(t *testing.T) {
	t.Parallel()
	outage := redisOutage(t)
	rs := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	sc := startSidecar(t, map[string]string{
		"CABLECAR_REDIS_URL":       rs.URL,
		"CABLECAR_CHANNEL_PREFIX":  prefix,
		"CABLECAR_ALLOW_ANONYMOUS": "true",
		"CABLECAR_ROUTES":          outageRoute,
		"CABLECAR_ALLOWED_ORIGINS": conformanceOrigin,
		// Debug, so the test can see that reconnect attempts are logged
		// at debug and nowhere louder.
		"CABLECAR_LOG_LEVEL": "debug",
	}, "serve")

	health := startHealthPoller(t, sc.addr)
	clients := connectOutageClients(t, sc)
	js := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL(""),
		Origin:        conformanceOrigin,
		Subscriptions: []map[string]any{{"channel": "OutageChannel", "stream": outageStream(0)}},
		Duration:      outage + 2*time.Minute, // ended by the test's cleanup
	})
	waitEvent(t, js, jsclient.KindConnected)

	pub := startOutagePublisher(t, rs.Addr, prefix)
	waitAllReceived(t, clients, 3, 10*time.Second) // broadcasts flow

	killAt := time.Now()
	rs.Kill()
	t.Logf("redis-server killed; down for %v", outage)
	time.Sleep(outage)

	restartAt := time.Now()
	rs.Restart(t)
	healthyAt := health.waitStatus(t, http.StatusOK, restartAt, 30*time.Second)
	resubscribedAt := waitResubscribed(t, rs.Addr, prefix, 30*time.Second)
	time.Sleep(2 * time.Second) // broadcasts after recovery
	pub.stop()
	health.stop()

	checkProcessUp(t, sc)
	checkHealthTimeline(t, health.samples(), killAt, restartAt)
	checkStayedConnected(t, clients, js, killAt, restartAt, outage)
	checkDelivery(t, clients, pub.records(), killAt, restartAt)
	checkOutageLog(t, sc.logs())

	t.Logf("figures: outage %v; /health 200 again %v after restart; all %d streams resubscribed %v after restart; first delivery %v after restart",
		outage, healthyAt.Sub(restartAt).Round(time.Millisecond), outageStreams,
		resubscribedAt.Sub(restartAt).Round(time.Millisecond), firstDeliveryAfter(clients, restartAt))
}

// redisOutage is CABLECAR_REDIS_OUTAGE, or defaultRedisOutage.
func redisOutage(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("CABLECAR_REDIS_OUTAGE")
	if v == "" {
		return defaultRedisOutage
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Second {
		t.Fatalf("CABLECAR_REDIS_OUTAGE=%q: want a Go duration of at least 10s (%v)", v, err)
	}
	return d
}

func outageStream(i int) string { return fmt.Sprintf("outage-%d", i) }

func outageIdentifier(stream string) string {
	return `{"channel":"OutageChannel","stream":"` + stream + `"}`
}

// outageClient is one raw WebSocket subscriber and everything it received,
// with arrival times.
type outageClient struct {
	name   string
	stream int

	mu       sync.Mutex // guards following
	pings    []time.Time
	messages []outageMessage
	ended    string // why the socket ended ("" while open)
}

// outageMessage is one broadcast as a client received it.
type outageMessage struct {
	seq int
	at  time.Time
}

// outagePayload is the JSON every test broadcast carries.
type outagePayload struct {
	Seq    int `json:"seq"`
	Stream int `json:"stream"`
}

// connectOutageClients opens outageClients subscribers, client i on stream
// i mod outageStreams, and records their frames until the test ends.
func connectOutageClients(t *testing.T, sc *sidecar) []*outageClient {
	t.Helper()
	clients := make([]*outageClient, outageClients)
	for i := range clients {
		c := &outageClient{name: fmt.Sprintf("client %d", i), stream: i % outageStreams}
		p, hs := dialRaw(t, c.name, sc.wsURL(""), conformanceOrigin, []string{"actioncable-v1-json"}, "")
		if p == nil {
			t.Fatalf("%s: handshake %+v", c.name, hs)
		}
		id := outageIdentifier(outageStream(c.stream))
		if got := p.collect(1, 0, 5*time.Second); len(got) != 1 || !strings.HasPrefix(got[0], `{"type":"welcome"`) {
			t.Fatalf("%s: %v, want the welcome", c.name, got)
		}
		p.sendText(t, subscribeCmd(id))
		if got := p.collect(1, 0, 5*time.Second); len(got) != 1 || got[0] != `{"identifier":`+jsonString(id)+`,"type":"confirm_subscription"}` {
			t.Fatalf("%s: %v, want the confirmation", c.name, got)
		}
		go c.record(p)
		clients[i] = c
	}
	return clients
}

// record reads p's frames until the socket ends.
func (c *outageClient) record(p *rawPeer) {
	for f := range p.frames {
		c.take(f)
	}
	c.mu.Lock()
	if c.ended == "" {
		c.ended = "socket closed without a close frame"
	}
	c.mu.Unlock()
}

// take files one frame: a ping, a broadcast, or the end of the connection.
func (c *outageClient) take(f rawFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case f.op == ws.OpClose:
		c.ended = f.text()
	case isPing(f.data):
		c.pings = append(c.pings, f.at)
	default:
		var m struct {
			Type    string         `json:"type"`
			Message *outagePayload `json:"message"`
		}
		if err := json.Unmarshal([]byte(f.data), &m); err != nil || m.Message == nil {
			if m.Type == "disconnect" {
				c.ended = f.data
			}
			return
		}
		c.messages = append(c.messages, outageMessage{seq: m.Message.Seq, at: f.at})
	}
}

// snapshot returns copies of what c recorded.
func (c *outageClient) snapshot() (pings []time.Time, messages []outageMessage, ended string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pings), slices.Clone(c.messages), c.ended
}

// waitAllReceived waits until every client has at least n messages.
func waitAllReceived(t *testing.T, clients []*outageClient, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, c := range clients {
		for {
			_, msgs, _ := c.snapshot()
			if len(msgs) >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s received %d messages in %v, want %d", c.name, len(msgs), timeout, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// publishRecord is one PUBLISH the test made, as Rails would, straight to
// Redis.
type publishRecord struct {
	seq, stream int
	at          time.Time // when PUBLISH returned
	receivers   int64     // Redis' answer: subscribers it reached
	err         error
}

// outagePublisher publishes one message to every stream per tick, before,
// during and after the outage, over a plain RESP connection of its own (as
// any job process would; go-redis' client would also print a line per
// failed dial into the test's output).
type outagePublisher struct {
	loop
	addr, prefix string

	conn net.Conn // owned by run; nil while disconnected
	rd   *bufio.Reader

	mu   sync.Mutex // guards recs
	recs []publishRecord
}

func startOutagePublisher(t *testing.T, addr, prefix string) *outagePublisher {
	t.Helper()
	p := &outagePublisher{addr: addr, prefix: prefix}
	p.goUntilStop(t, p.run)
	return p
}

func (p *outagePublisher) run() {
	defer func() {
		if p.conn != nil {
			p.conn.Close()
		}
	}()
	tick := time.NewTicker(outagePublishEvery)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		for s := range outageStreams {
			payload, _ := json.Marshal(outagePayload{Seq: seq, Stream: s})
			n, err := p.publish(p.prefix+":"+outageStream(s), payload)
			p.mu.Lock()
			p.recs = append(p.recs, publishRecord{seq: seq, stream: s, at: time.Now(), receivers: n, err: err})
			p.mu.Unlock()
		}
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
	}
}

// publish sends one PUBLISH and returns Redis' answer, dialing first if
// the last attempt failed. Any error drops the connection.
func (p *outagePublisher) publish(channel string, payload []byte) (int64, error) {
	if p.conn == nil {
		conn, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return 0, err
		}
		p.conn, p.rd = conn, bufio.NewReader(conn)
	}
	n, err := respPublish(p.conn, p.rd, channel, payload)
	if err != nil {
		p.conn.Close()
		p.conn = nil
	}
	return n, err
}

// respPublish writes PUBLISH channel payload as a RESP array and reads the
// integer reply.
func respPublish(conn net.Conn, rd *bufio.Reader, channel string, payload []byte) (int64, error) {
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	cmd := fmt.Sprintf("*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(channel), channel, len(payload), payload)
	if _, err := io.WriteString(conn, cmd); err != nil {
		return 0, fmt.Errorf("PUBLISH %s: %w", channel, err)
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("PUBLISH %s: %w", channel, err)
	}
	if !strings.HasPrefix(line, ":") {
		return 0, fmt.Errorf("PUBLISH %s: answered %q", channel, strings.TrimSpace(line))
	}
	return strconv.ParseInt(strings.TrimSpace(line[1:]), 10, 64)
}

// loop is a test's goroutine that runs until stop (not to be confused
// with background, a helper process).
type loop struct{ quit, done chan struct{} }

// goUntilStop runs run on a goroutine, which returns once quit is closed;
// the test's end stops it if nothing did before.
func (bg *loop) goUntilStop(t *testing.T, run func()) {
	bg.quit, bg.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(bg.done)
		run()
	}()
	t.Cleanup(bg.stop)
}

// stop closes quit and waits for the goroutine (for a publisher: the last
// PUBLISH); it may be called more than once.
func (bg *loop) stop() {
	select {
	case <-bg.quit:
	default:
		close(bg.quit)
	}
	<-bg.done
}

func (p *outagePublisher) records() []publishRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.recs)
}

// healthSample is one GET /health.
type healthSample struct {
	at     time.Time
	status int // 0: no HTTP answer
	body   string
}

// healthTimeout bounds one GET /health of the poller.
const healthTimeout = 5 * time.Second

// healthPoller asks /health every 100 ms for the whole test.
type healthPoller struct {
	loop
	addr string

	mu   sync.Mutex // guards list
	list []healthSample
}

func startHealthPoller(t *testing.T, addr string) *healthPoller {
	t.Helper()
	h := &healthPoller{addr: addr}
	h.goUntilStop(t, h.run)
	return h
}

func (h *healthPoller) run() {
	client := &http.Client{Timeout: healthTimeout}
	for {
		s := healthSample{status: 0}
		resp, err := client.Get("http://" + h.addr + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s.status, s.body = resp.StatusCode, string(b)
		} else {
			s.body = err.Error()
		}
		s.at = time.Now()
		h.mu.Lock()
		h.list = append(h.list, s)
		h.mu.Unlock()
		select {
		case <-h.quit:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (h *healthPoller) samples() []healthSample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.list)
}

// waitStatus waits for a sample taken after since with the given status and
// returns its time.
func (h *healthPoller) waitStatus(t *testing.T, status int, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range h.samples() {
			if s.at.After(since) && s.status == status {
				return s.at
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	list := h.samples()
	t.Fatalf("/health did not answer %d within %v; last: %+v", status, timeout, list[len(list)-1])
	return time.Time{}
}

// waitResubscribed waits until the restarted Redis has exactly one
// subscriber (cablecar) on every stream's channel, and returns when.
func waitResubscribed(t *testing.T, addr, prefix string, timeout time.Duration) time.Time {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	channels := make([]string, outageStreams)
	for s := range channels {
		channels[s] = prefix + ":" + outageStream(s)
	}
	deadline := time.Now().Add(timeout)
	var last map[string]int64
	for time.Now().Before(deadline) {
		n, err := rdb.PubSubNumSub(context.Background(), channels...).Result()
		if err == nil && allOne(n, channels) {
			return time.Now()
		}
		last = n
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("PUBSUB NUMSUB after restart: %v, want 1 on each of %v", last, channels)
	return time.Time{}
}

func allOne(n map[string]int64, channels []string) bool {
	for _, c := range channels {
		if n[c] != 1 {
			return false
		}
	}
	return true
}

// checkProcessUp fails t if cablecar exited during the outage.
func checkProcessUp(t *testing.T, sc *sidecar) {
	t.Helper()
	if err := sc.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("cablecar is not running after the outage: %v", err)
	}
}

// checkHealthTimeline: /health turns 503 with a redis reason within a few
// seconds of the kill, stays 503 until the restart, and was 200 before.
func checkHealthTimeline(t *testing.T, samples []healthSample, killAt, restartAt time.Time) {
	t.Helper()
	const maxDownLatency = 5 * time.Second // probe timeout (3 s) plus a probe interval and slack
	var firstDown *healthSample
	unanswered := 0
	for i, s := range samples {
		switch {
		case s.at.Before(killAt):
			if s.status != http.StatusOK {
				t.Errorf("/health before the kill: %d %s", s.status, s.body)
			}
		case s.at.Before(restartAt) && firstDown == nil:
			if s.status == http.StatusServiceUnavailable {
				firstDown = &samples[i]
			}
		case s.at.Before(restartAt) && s.status == 0:
			// No answer within the poller's timeout: on a loaded CI
			// machine that is the test's scheduling as often as the
			// server's. Reported, not failed; an answer must be 503.
			unanswered++
			t.Logf("/health %v into the outage: no answer: %s", s.at.Sub(killAt).Round(time.Millisecond), s.body)
		case s.at.Before(restartAt):
			if s.status != http.StatusServiceUnavailable {
				t.Errorf("/health %v into the outage: %d %s, want 503 until Redis is back", s.at.Sub(killAt).Round(time.Millisecond), s.status, s.body)
			}
		}
	}
	if unanswered > 0 {
		t.Logf("%d /health requests during the outage got no answer within %v", unanswered, healthTimeout)
	}
	if firstDown == nil {
		t.Fatalf("/health never answered 503 during the outage")
	}
	latency := firstDown.at.Sub(killAt)
	t.Logf("/health 503 %v after the kill: %s", latency.Round(time.Millisecond), strings.TrimSpace(firstDown.body))
	if latency > maxDownLatency {
		t.Errorf("/health turned 503 %v after the kill, want within %v", latency, maxDownLatency)
	}
	if !strings.Contains(firstDown.body, `"reason":"redis`) {
		t.Errorf("/health body %s does not name Redis as the reason", firstDown.body)
	}
}

// checkStayedConnected: no client lost its socket, and each kept getting
// pings through the outage, never silent long enough for the real client
// to give up on the connection.
func checkStayedConnected(t *testing.T, clients []*outageClient, js *jsclient.Client, killAt, restartAt time.Time, outage time.Duration) {
	t.Helper()
	// About one ping per interval; one fewer or more depending on where
	// the process-wide ticker falls.
	expected := int(outage / pingInterval)
	var counts []int
	for _, c := range clients {
		pings, _, ended := c.snapshot()
		if ended != "" {
			t.Errorf("%s lost its connection: %s", c.name, ended)
		}
		n, gap := pingsBetween(pings, killAt, restartAt)
		counts = append(counts, n)
		if n < expected-1 || n > expected+1 || gap >= staleThreshold {
			t.Errorf("%s: %d pings during the %v outage (want %d ± 1), longest silence %v (want < %v)", c.name, n, outage, expected, gap, staleThreshold)
		}
	}
	t.Logf("pings per raw client during the outage: min %d, max %d (outage %v, ping every %v)", slices.Min(counts), slices.Max(counts), outage, pingInterval)

	events := js.Snapshot()
	if n := len(jsclient.Filter(events, jsclient.KindWSOpen)); n != 1 {
		t.Errorf("the real JS client opened %d sockets, want 1 (it reconnects after %v without pings)", n, staleThreshold)
	}
	for _, kind := range []string{jsclient.KindDisconnected, jsclient.KindWSClose} {
		if ev, ok := jsclient.First(events, kind); ok {
			t.Errorf("the real JS client saw %s: %+v", kind, ev)
		}
	}
	jsPings := 0
	for _, ev := range jsclient.Filter(events, jsclient.KindFrameIn) {
		if isPing(ev.Text()) {
			jsPings++
		}
	}
	t.Logf("the real JS client: one socket, %d pings in all", jsPings)
}

// pingsBetween counts the pings in (from, to) and the longest silence in
// that window, its edges included.
func pingsBetween(pings []time.Time, from, to time.Time) (n int, longest time.Duration) {
	last := from
	for _, p := range pings {
		if p.Before(from) || p.After(to) {
			continue
		}
		n++
		longest = max(longest, p.Sub(last))
		last = p
	}
	return n, max(longest, to.Sub(last))
}

// checkDelivery: a message Redis acknowledged as received by cablecar
// (PUBLISH answered 1) reaches every client of its stream, once and in
// order. Only the second before the kill is exempt: a PUBLISH answered just
// before SIGKILL may never have been written to cablecar's socket.
func checkDelivery(t *testing.T, clients []*outageClient, recs []publishRecord, killAt, restartAt time.Time) {
	t.Helper()
	uncertainFrom := killAt.Add(-time.Second)
	must := make([][]int, outageStreams)       // seqs each stream's clients must get
	may := make([]map[int]bool, outageStreams) // seqs they may get
	after := 0
	for s := range may {
		may[s] = map[int]bool{}
	}
	for _, r := range recs {
		if r.at.After(restartAt) && r.err == nil {
			after++
		}
		switch {
		case r.err == nil && r.receivers >= 1 && (r.at.Before(uncertainFrom) || r.at.After(restartAt)):
			must[r.stream] = append(must[r.stream], r.seq)
			may[r.stream][r.seq] = true
		case r.at.After(uncertainFrom) && r.at.Before(restartAt):
			may[r.stream][r.seq] = true
		}
	}
	if after == 0 {
		t.Fatal("no PUBLISH succeeded after the restart")
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range clients {
		var got []int
		for {
			_, msgs, _ := c.snapshot()
			got = got[:0]
			for _, m := range msgs {
				got = append(got, m.seq)
			}
			if containsInOrder(got, must[c.stream]) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !containsInOrder(got, must[c.stream]) {
			t.Errorf("%s (stream %d): received %d messages, missing some of the %d Redis delivered to cablecar: %s",
				c.name, c.stream, len(got), len(must[c.stream]), missing(got, must[c.stream]))
		}
		for i, seq := range got {
			if !may[c.stream][seq] || (i > 0 && seq <= got[i-1]) {
				t.Errorf("%s: message %d unexpected or out of order in %v", c.name, seq, got)
				break
			}
		}
	}
}

// containsInOrder reports whether got has every seq of want, in want's
// order.
func containsInOrder(got, want []int) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// missing names the first few seqs of want that got lacks.
func missing(got, want []int) string {
	have := map[int]bool{}
	for _, g := range got {
		have[g] = true
	}
	var out []string
	for _, w := range want {
		if !have[w] {
			out = append(out, fmt.Sprint(w))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("… (%d in all)", len(out)))
	}
	return strings.Join(out, " ")
}

// firstDeliveryAfter is the time from restart to the first message any
// client received after it.
func firstDeliveryAfter(clients []*outageClient, restartAt time.Time) time.Duration {
	first := time.Duration(-1)
	for _, c := range clients {
		_, msgs, _ := c.snapshot()
		for _, m := range msgs {
			if d := m.at.Sub(restartAt); d > 0 && (first < 0 || d < first) {
				first = d
			}
		}
	}
	return first.Round(time.Millisecond)
}

// logLevel matches the level of a log/slog text line.
var logLevel = regexp.MustCompile(`\blevel=(DEBUG|INFO|WARN|ERROR)\b`)

// checkOutageLog counts what the process logged about Redis over the whole
// run: a fixed number of warn/error lines (whatever the outage length and
// client count), the loss once, the recovery once with the stream count,
// and the retries at debug only.
func checkOutageLog(t *testing.T, log string) {
	t.Helper()
	var loud, retries []string
	lost, reconnected := 0, 0
	wantReconnected := fmt.Sprintf("reconnected, resubscribed %d streams", outageStreams)
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(strings.ToLower(line), "redis") {
			continue
		}
		level := "NONE" // not a slog line (go-redis' own logger writes these)
		if m := logLevel.FindStringSubmatch(line); m != nil {
			level = m[1]
		}
		switch level {
		case "WARN", "ERROR", "NONE":
			loud = append(loud, line)
		case "DEBUG":
			if strings.Contains(line, "reconnect failed") {
				retries = append(retries, line)
			}
		}
		if strings.Contains(line, "redis subscriber connection lost") {
			lost++
		}
		if strings.Contains(line, wantReconnected) {
			reconnected++
		}
	}
	t.Logf("warn/error lines about Redis (%d):\n%s", len(loud), strings.Join(loud, "\n"))
	t.Logf("debug reconnect attempts: %d", len(retries))
	if len(loud) > maxRedisLogLines {
		t.Errorf("%d warn/error lines about Redis, want at most %d", len(loud), maxRedisLogLines)
	}
	if lost != 1 || reconnected != 1 {
		t.Errorf(`"connection lost" logged %d times and %q %d times, want once each`, lost, wantReconnected, reconnected)
	}
	if len(retries) < 2 {
		t.Errorf("%d reconnect attempts logged at debug, want several: retries should be visible at debug", len(retries))
	}
}
