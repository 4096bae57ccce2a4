// Package trace follows streams live for `cablecar trace`: every broadcast
// with its time, size and a preview, and how many subscribers the running
// sidecar delivered it to.
//
// Broadcasts are read from Redis (the same SUBSCRIBE the sidecar makes,
// through the same client: a URL, the master Sentinel names, or any
// Cluster node, which hears a classic PUBLISH on every node), so a message
// on a stream nobody subscribes to still shows up, with 0 deliveries: the
// classic wrong-stream-name bug. Delivery counts come from the sidecar's
// admin event stream (docs/admin-api.md). With sharded pub/sub the
// broadcasts themselves come from that stream too.
package trace

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	redisbroker "github.com/cablecar/cablecar/adapters/redis"
)

// Options says what to follow and where.
type Options struct {
	Streams []string
	// Redis is the CABLECAR_REDIS_* settings; broadcasts are read through
	// the same client the broker would use (URL, Sentinel or Cluster, ACL
	// users, TLS). With ShardedPubSub, or when it names no Redis (and
	// RedisURL is empty), broadcasts are read from the admin events alone.
	Redis redisbroker.Config
	// RedisURL is a short form for Redis with only URL set.
	RedisURL string
	Prefix   string // CABLECAR_CHANNEL_PREFIX
	// Notes, when set, gets a line saying where broadcasts are read from
	// when that is not Redis (default nil: silent).
	Notes io.Writer
	// AdminURL is the sidecar's admin listener, e.g. http://127.0.0.1:9090.
	AdminURL   string
	AdminToken string
	// Match is how long to wait for the sidecar's delivery report of a
	// Redis message (default 500ms).
	Match time.Duration
	JSON  bool
}

// Line is one traced broadcast.
type Line struct {
	At        time.Time `json:"at"`
	Stream    string    `json:"stream"`
	Bytes     int       `json:"bytes"`
	Delivered int       `json:"delivered"` // -1: unknown (no admin listener)
	Preview   string    `json:"preview"`
	// Job summarises a job event cablecar's watchers published
	// ("sidekiq ProcessDocumentJob 8f2c… retrying RuntimeError"), "" for
	// other messages.
	Job string `json:"job,omitempty"`
}

// delivery is a broadcast event from the admin stream.
type delivery struct {
	Stream    string `json:"stream"`
	Bytes     int    `json:"bytes"`
	Delivered int    `json:"delivered"`
	Preview   string `json:"preview"`
}

// Run prints a line per broadcast until ctx is done. ready, if not nil, is
// closed once every source is listening.
func Run(ctx context.Context, opts Options, out io.Writer, ready chan<- struct{}) error {
	if opts.Match == 0 {
		opts.Match = 500 * time.Millisecond
	}
	want := map[string]bool{}
	for _, s := range opts.Streams {
		want[s] = true
	}
	deliveries := make(chan delivery, 256)
	adminOK := opts.AdminURL != "" && followAdmin(ctx, opts, want, deliveries) == nil
	p := &printer{out: out, json: opts.JSON}
	rc := opts.redisConfig()
	switch {
	case !rc.Configured():
		if !adminOK {
			return fmt.Errorf("nothing to trace from: set CABLECAR_REDIS_URL, or run against a sidecar whose admin listener answers at %s", opts.AdminURL)
		}
	case rc.ShardedPubSub:
		// A sharded channel is heard only with SSUBSCRIBE on the shard
		// that owns its slot; the admin events already have every
		// broadcast the sidecar saw.
		if !adminOK {
			return fmt.Errorf("CABLECAR_REDIS_SHARDED_PUBSUB=true: trace reads broadcasts from the sidecar's admin event stream then, and none answers at %s", opts.AdminURL)
		}
		if opts.Notes != nil {
			fmt.Fprintln(opts.Notes, "CABLECAR_REDIS_SHARDED_PUBSUB=true: reading broadcasts from the sidecar's admin event stream, not Redis, so broadcasts no sidecar received do not show")
		}
	default:
		return followRedis(ctx, opts, rc, adminOK, deliveries, p, ready)
	}
	signal(ready)
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-deliveries:
			p.print(Line{At: time.Now(), Stream: d.Stream, Bytes: d.Bytes, Delivered: d.Delivered, Preview: d.Preview, Job: jobSummary(d.Preview)})
		}
	}
}

// redisConfig returns the Redis settings to read: Redis, or RedisURL when
// Redis names none.
func (opts Options) redisConfig() redisbroker.Config {
	rc := opts.Redis
	if !rc.Configured() && opts.RedisURL != "" {
		rc.URL = opts.RedisURL
	}
	return rc
}

func signal(ready chan<- struct{}) {
	if ready != nil {
		close(ready)
	}
}

// followRedis subscribes to the streams and matches each message with the
// sidecar's report of the same broadcast. With Cluster, the classic
// SUBSCRIBE lands on one node, which hears a PUBLISH on any node.
func followRedis(ctx context.Context, opts Options, rc redisbroker.Config, adminOK bool, deliveries <-chan delivery, p *printer, ready chan<- struct{}) error {
	rdb, err := rc.NewClient("cablecar-trace")
	if err != nil {
		return err // the settings' errors name their variables, without passwords
	}
	defer rdb.Close()
	channels := make([]string, len(opts.Streams))
	for i, s := range opts.Streams {
		channels[i] = redisChannel(opts.Prefix, s)
	}
	ps := rdb.Subscribe(ctx, channels...)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the first acknowledgement
		return fmt.Errorf("subscribe %v: %w", channels, err)
	}
	signal(ready)
	msgs := ps.Channel()
	var pending []delivery // reports that came before their Redis message
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			stream := strings.TrimPrefix(m.Channel, opts.Prefix+":")
			line := Line{At: time.Now(), Stream: stream, Bytes: len(m.Payload), Delivered: -1, Preview: cut(m.Payload), Job: jobSummary(m.Payload)}
			if adminOK {
				line.Delivered, pending = match(line, pending, deliveries, opts.Match)
			}
			p.print(line)
		}
	}
}

// match waits briefly for the sidecar's report of line's broadcast. A
// message the sidecar had no subscribers for is never reported: 0.
func match(line Line, pending []delivery, deliveries <-chan delivery, wait time.Duration) (int, []delivery) {
	for i, d := range pending {
		if d.Stream == line.Stream && d.Bytes == line.Bytes {
			return d.Delivered, append(pending[:i], pending[i+1:]...)
		}
	}
	timeout := time.After(wait)
	for {
		select {
		case d := <-deliveries:
			if d.Stream == line.Stream && d.Bytes == line.Bytes {
				return d.Delivered, pending
			}
			if len(pending) < 1000 {
				pending = append(pending, d)
			}
		case <-timeout:
			return 0, pending
		}
	}
}

// followAdmin reads the admin event stream in the background, passing on
// broadcast events for the traced streams.
func followAdmin(ctx context.Context, opts Options, want map[string]bool, out chan<- delivery) error {
	url := strings.TrimRight(opts.AdminURL, "/") + "/api/events"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if opts.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+opts.AdminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	var once sync.Once
	go func() {
		defer once.Do(func() { resp.Body.Close() })
		readEvents(resp.Body, want, out)
	}()
	return nil
}

func readEvents(r io.Reader, want map[string]bool, out chan<- delivery) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && name == "broadcast":
			var d delivery
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d) == nil && want[d.Stream] {
				select {
				case out <- d:
				default: // a trace that cannot keep up loses reports, never blocks
				}
			}
		}
	}
}

func redisChannel(prefix, stream string) string {
	if prefix == "" {
		return stream
	}
	return prefix + ":" + stream
}

// jobSummary describes a job event (adapters/jobs) in one line, or returns
// "" for any other payload.
func jobSummary(payload string) string {
	if !strings.HasPrefix(payload, `{"type":"job"`) {
		return ""
	}
	var ev struct {
		Backend, Class, Status string
		JobID                  string `json:"job_id"`
		ErrorClass             string `json:"error_class"`
		RetryCount             *int   `json:"retry_count"`
	}
	if json.Unmarshal([]byte(payload), &ev) != nil {
		return ""
	}
	parts := []string{ev.Backend, ev.Class, ev.JobID, ev.Status}
	if ev.ErrorClass != "" {
		parts = append(parts, ev.ErrorClass)
	}
	if ev.RetryCount != nil {
		parts = append(parts, fmt.Sprintf("retry_count=%d", *ev.RetryCount))
	}
	return strings.Join(parts, " ")
}

// cut is the payload's first 120 bytes, on a rune boundary.
func cut(s string) string {
	if len(s) <= 120 {
		return s
	}
	s = s[:120]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

type printer struct {
	out  io.Writer
	json bool
}

func (p *printer) print(l Line) {
	if p.json {
		b, _ := json.Marshal(l)
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	to := "? subscribers (no admin listener)"
	switch {
	case l.Delivered == 1:
		to = "1 subscriber"
	case l.Delivered >= 0:
		to = fmt.Sprintf("%d subscribers", l.Delivered)
	}
	what := l.Preview
	if l.Job != "" {
		what = "job " + l.Job
	}
	fmt.Fprintf(p.out, "%s  %s  %d B  → %s  %s\n", l.At.Format("15:04:05.000"), l.Stream, l.Bytes, to, what)
}
