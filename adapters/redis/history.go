package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/history"
)

// History records the streams that CABLECAR_HISTORY covers in Redis
// Streams and reads them back; it implements history.Reader.
//
// Publishers keep using plain PUBLISH, which every node hears, so exactly
// one node records: the holder of a lease (the jobs store's lease, key
// cablecar:history:<prefix>lease:recorder). The holder PSUBSCRIBEs the
// rules' patterns and runs one script per message, which checks the lease
// again (a node that lost it records nothing), appends the message to the
// stream's Redis Stream (XADD MAXLEN ~ size, PEXPIRE ttl), and publishes
// the annotated copy (history.Annotate) on history.InternalPrefix+stream,
// all at once. Every node fans that copy out to extended clients, so the
// offset a client sees live is the one the history has.
//
// It needs one Redis server (standalone or Sentinel): the script's keys
// must live together.
type History struct {
	client   goredis.UniversalClient
	log      *slog.Logger
	rules    history.Rules
	prefix   string // the broker's channel prefix with its ":", or ""
	keys     string // every key starts with it
	lease    *jobs.RedisStore
	holder   string
	leaseTTL time.Duration
}

// NewHistory records and reads history in b's Redis with b's channel
// prefix. Run records; Snapshot reads and works without Run.
func NewHistory(b *Broker, rules history.Rules, logger *slog.Logger) (*History, error) {
	if b.sharded || b.shards != nil {
		return nil, errors.New("CABLECAR_HISTORY needs a single Redis with plain pub/sub, not sharded pub/sub")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	keys := "cablecar:history:" + b.prefix
	return &History{
		client: b.client, log: logger, rules: rules, prefix: b.prefix, keys: keys,
		lease:  jobs.NewRedisStore(b.client, jobs.RedisStoreOptions{KeyPrefix: keys}),
		holder: randomID(), leaseTTL: 5 * time.Second,
	}, nil
}

func (h *History) streamKey(stream string) string { return h.keys + "s:" + stream }
func (h *History) metaKey(stream string) string   { return h.keys + "m:" + stream }

// leaseKey is the key jobs.RedisStore keeps the "recorder" lease in; the
// record script reads it to fence a node that lost the lease.
func (h *History) leaseKey() string { return h.keys + "lease:" + leaseName }

const leaseName = "recorder"

// recordScript: KEYS = lease, stream, meta; ARGV = holder, data, size, ttl
// ms, annotated channel, a fresh epoch. It returns the offset, or 0 when
// the lease is not the caller's.
var recordScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local epoch = redis.call('HGET', KEYS[3], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[3], 'epoch', epoch)
end
local off = redis.call('HINCRBY', KEYS[3], 'last', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'o', off, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], off .. ' ' .. epoch .. '\n' .. ARGV[2])
return off`)

// Run competes for the recorder lease and records while holding it, until
// ctx is done; then it releases the lease. Redis errors are logged and
// retried: history is best effort, delivery never waits on it.
func (h *History) Run(ctx context.Context) error {
	tick := time.NewTicker(h.leaseTTL / 3)
	defer tick.Stop()
	var stop func() // stops the recording goroutine and waits for it; nil while not recording
	defer func() {
		if stop != nil {
			stop()
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = h.lease.Release(rctx, leaseName, h.holder)
	}()
	for {
		ok, err := h.lease.Acquire(ctx, leaseName, h.holder, h.leaseTTL)
		if err != nil && ctx.Err() == nil {
			h.log.Warn("history: could not renew the recorder lease", "err", err)
		}
		switch {
		case ok && stop == nil:
			stop = h.startRecording(ctx)
			h.log.Info("history: this node records the history streams", "rules", len(h.rules))
		case !ok && stop != nil:
			stop()
			stop = nil
			h.log.Info("history: another node records now")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// startRecording runs record on a goroutine; the function it returns
// stops it and waits until it has.
func (h *History) startRecording(ctx context.Context) func() {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.record(rctx) }()
	return func() { cancel(); <-done }
}

// record subscribes the rules' patterns and records every message until
// ctx is done.
func (h *History) record(ctx context.Context) {
	patterns := make([]string, len(h.rules))
	for i, r := range h.rules {
		patterns[i] = r.RedisPattern(h.prefix)
	}
	ps := h.client.PSubscribe(ctx, patterns...)
	defer ps.Close()
	ch := ps.Channel(goredis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if err := h.recordOne(ctx, m.Channel, m.Payload); err != nil && ctx.Err() == nil {
				h.log.Warn("history: message not recorded", "channel", m.Channel, "err", err)
			}
		}
	}
}

// recordOne records one published message, skipping what no rule covers
// (the annotated copies among them).
func (h *History) recordOne(ctx context.Context, channel, payload string) error {
	stream, ok := strings.CutPrefix(channel, h.prefix)
	if !ok || strings.HasPrefix(stream, history.InternalPrefix) {
		return nil
	}
	rule, ok := h.rules.Match(stream)
	if !ok {
		return nil
	}
	keys := []string{h.leaseKey(), h.streamKey(stream), h.metaKey(stream)}
	off, err := recordScript.Run(ctx, h.client, keys, h.holder, payload, rule.Size, rule.TTL.Milliseconds(),
		h.prefix+history.InternalPrefix+stream, newEpoch()).Int64()
	if err != nil {
		return fmt.Errorf("record on %s: %w", stream, err)
	}
	if off == 0 {
		return errors.New("the recorder lease is no longer this node's")
	}
	return nil
}

// Snapshot implements history.Reader.
func (h *History) Snapshot(ctx context.Context, stream string) (history.Snapshot, error) {
	rule, ok := h.rules.Match(stream)
	if !ok {
		return history.Snapshot{}, nil
	}
	pipe := h.client.Pipeline()
	meta := pipe.HGetAll(ctx, h.metaKey(stream))
	entries := pipe.XRange(ctx, h.streamKey(stream), "-", "+")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return history.Snapshot{}, fmt.Errorf("read history of %s: %w", stream, err)
	}
	m := meta.Val()
	if m["epoch"] == "" {
		return history.Snapshot{}, nil
	}
	last, err := strconv.ParseUint(m["last"], 10, 64)
	if err != nil {
		return history.Snapshot{}, fmt.Errorf("read history of %s: bad last offset %q", stream, m["last"])
	}
	snap := history.Snapshot{Epoch: m["epoch"], Last: last}
	cut := time.Now().Add(-rule.TTL).UnixMilli()
	for _, x := range entries.Val() {
		e, err := parseEntry(x)
		if err != nil {
			h.log.Warn("history: skipped a malformed entry", "stream", stream, "id", x.ID, "err", err)
			continue
		}
		if e.Time < cut {
			snap.DroppedAt = e.Time
			continue
		}
		snap.Entries = append(snap.Entries, e)
	}
	if len(snap.Entries) > 0 && snap.Entries[0].Offset > 1 {
		// MAXLEN trimmed some: they were recorded at or before the
		// oldest one left.
		snap.DroppedAt = max(snap.DroppedAt, snap.Entries[0].Time)
	}
	return snap, nil
}

// parseEntry reads an XADD entry: its id's milliseconds, o and d.
func parseEntry(x goredis.XMessage) (history.Entry, error) {
	ms, _, _ := strings.Cut(x.ID, "-")
	t, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return history.Entry{}, fmt.Errorf("bad id: %w", err)
	}
	o, _ := x.Values["o"].(string)
	off, err := strconv.ParseUint(o, 10, 64)
	if err != nil {
		return history.Entry{}, fmt.Errorf("bad offset %q", o)
	}
	d, ok := x.Values["d"].(string)
	if !ok {
		return history.Entry{}, errors.New("no data")
	}
	return history.Entry{Offset: off, Time: t, Data: []byte(d)}, nil
}

// newEpoch is a random 8-hex-digit id for a stream's new history.
func newEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
