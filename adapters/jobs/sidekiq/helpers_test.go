package sidekiq

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"text/template"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/internal/redistest"
)

// testSettle is the Settle of the tests: short, so that they are quick.
const testSettle = 200 * time.Millisecond

// fx is the data a fixture template is rendered with. Times are Unix
// seconds; the templates write them as each version does (sec: float
// seconds, ms: integer milliseconds).
type fx struct {
	JID, JobID, Identity      string
	Created, Enqueued, Failed float64
	RunAt                     int64
}

// render renders testdata/<dir>/<name>.json.
func render(t *testing.T, dir, name string, d fx) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", dir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New(name).Funcs(template.FuncMap{
		"sec": func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) },
		"ms":  func(f float64) string { return strconv.FormatInt(int64(math.Round(f*1000)), 10) },
		"json": func(s string) (string, error) {
			b, err := json.Marshal(s)
			return string(b), err
		},
	}).Parse(string(bytes.TrimSpace(src)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, d); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out.Bytes()) {
		t.Fatalf("%s/%s renders invalid JSON: %s", dir, name, out.String())
	}
	return out.String()
}

// msAligned rounds f to the millisecond, so that Sidekiq 8's integer
// milliseconds and 6/7's float seconds stand for the same time.
func msAligned(f float64) float64 { return math.Round(f*1000) / 1000 }

// harness is a watcher on a real redis-server, and a client to write
// Sidekiq's keys with.
type harness struct {
	t   *testing.T
	srv *redistest.Server
	rdb *goredis.Client
	w   *Watcher
	ctx context.Context
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	srv := redistest.Start(t)
	return newHarnessOn(t, srv, cfg)
}

func newHarnessOn(t *testing.T, srv *redistest.Server, cfg Config) *harness {
	t.Helper()
	cfg.URL = srv.URL
	if cfg.Settle == 0 {
		cfg.Settle = testSettle
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	w, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	opts, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return &harness{t: t, srv: srv, rdb: rdb, w: w, ctx: context.Background()}
}

// poll polls once and fails the test on an error.
func (h *harness) poll(cur []byte) jobs.Batch {
	h.t.Helper()
	return pollWith(h.t, h.w, cur)
}

func pollWith(t *testing.T, w *Watcher, cur []byte) jobs.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := w.Poll(ctx, cur)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return b
}

// start polls with a nil cursor and returns the batch and the failure
// time it starts from: fixtures must fail after it.
func (h *harness) start() (jobs.Batch, float64) {
	h.t.Helper()
	b := h.poll(nil)
	c, err := parseCursor(b.Cursor)
	if err != nil {
		h.t.Fatal(err)
	}
	return b, c.Failed
}

// now is Redis's clock.
func (h *harness) now() float64 {
	h.t.Helper()
	tm, err := h.rdb.Time(h.ctx).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return float64(tm.UnixMicro()) / 1e6
}

// waitCovered sleeps until a poll would read failures up to f.
func (h *harness) waitCovered(f float64) {
	h.t.Helper()
	for h.now()-testSettle.Seconds() <= f+0.01 {
		time.Sleep(20 * time.Millisecond)
	}
}

// pollUntil polls from cur until the batches have brought n events (or 5 s
// pass), and returns all events, skips and the last cursor.
func (h *harness) pollUntil(cur []byte, n int) ([]jobs.Event, []jobs.Skip, []byte) {
	h.t.Helper()
	var evs []jobs.Event
	var skips []jobs.Skip
	deadline := time.Now().Add(5 * time.Second)
	for len(evs) < n && time.Now().Before(deadline) {
		b := h.poll(cur)
		evs, skips, cur = append(evs, b.Events...), append(skips, b.Skipped...), b.Cursor
	}
	return evs, skips, cur
}

func (h *harness) zadd(key string, score float64, member string) {
	h.t.Helper()
	if err := h.rdb.ZAdd(h.ctx, key, goredis.Z{Score: score, Member: member}).Err(); err != nil {
		h.t.Fatal(err)
	}
}

// addProcess writes a process's heartbeat hash as Sidekiq does, with info
// rendered from dir's fixture, and its work hash under workKey.
func (h *harness) addProcess(dir, identity, workKey string, work map[string]string, d fx) {
	h.t.Helper()
	d.Identity = identity
	info := render(h.t, dir, "info", d)
	_, err := h.rdb.TxPipelined(h.ctx, func(p goredis.Pipeliner) error {
		p.SAdd(h.ctx, "processes", identity)
		p.HSet(h.ctx, identity, "info", info, "busy", len(work), "beat", strconv.FormatFloat(h.now(), 'f', -1, 64),
			"rtt_us", 120, "quiet", "false", "rss", 38572)
		p.Expire(h.ctx, identity, 60*time.Second)
		if len(work) > 0 {
			p.HSet(h.ctx, identity+":"+workKey, work)
			p.Expire(h.ctx, identity+":"+workKey, 60*time.Second)
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// num is a json.Number, as the watcher decodes numbers.
func num(s string) json.Number { return json.Number(s) }
