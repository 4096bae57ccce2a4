package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisStore keeps leases, cursors and last states in the broker's Redis,
// and publishes from inside the same Lua script that advances the cursor:
// a node that dies mid-commit has either published and moved the cursor,
// or done neither. It needs a single Redis (standalone or Sentinel), since
// a script's keys must share one server.
type RedisStore struct {
	client        goredis.UniversalClient
	keyPrefix     string // e.g. "cablecar:jobs:"
	channelPrefix string // Rails' channel_prefix + ":", or ""
	stateTTL      time.Duration
	publish       string // PUBLISH, or SPUBLISH in sharded mode
}

// RedisStoreOptions configure a RedisStore.
type RedisStoreOptions struct {
	// KeyPrefix starts every key (default "cablecar:jobs:").
	KeyPrefix string
	// ChannelPrefix is CABLECAR_CHANNEL_PREFIX: a stream's channel is
	// ChannelPrefix:stream, as the Redis broker reads it.
	ChannelPrefix string
	// StateTTL is how long a stream's last job state is kept (default 1h).
	StateTTL time.Duration
	// Sharded publishes with SPUBLISH (CABLECAR_REDIS_SHARDED_PUBSUB).
	Sharded bool
}

// NewRedisStore uses client, which the caller closes.
func NewRedisStore(client goredis.UniversalClient, o RedisStoreOptions) *RedisStore {
	s := &RedisStore{client: client, keyPrefix: o.KeyPrefix, stateTTL: o.StateTTL, publish: "PUBLISH"}
	if s.keyPrefix == "" {
		s.keyPrefix = "cablecar:jobs:"
	}
	if s.stateTTL <= 0 {
		s.stateTTL = time.Hour
	}
	if o.ChannelPrefix != "" {
		s.channelPrefix = o.ChannelPrefix + ":"
	}
	if o.Sharded {
		s.publish = "SPUBLISH"
	}
	return s
}

func (s *RedisStore) leaseKey(backend string) string  { return s.keyPrefix + "lease:" + backend }
func (s *RedisStore) cursorKey(backend string) string { return s.keyPrefix + "cursor:" + backend }
func (s *RedisStore) stateKey(stream string) string {
	return s.keyPrefix + "last:" + s.channelPrefix + stream
}

// acquireScript sets the lease if free, renews it if ours.
var acquireScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)

// releaseScript deletes the lease if ours.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// commitScript: KEYS = lease, cursor, then one state key per message;
// ARGV = holder, lease ms, cursor, state ms, publish command, then a
// channel and a payload per message.
var commitScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
for i = 3, #KEYS do
  local ch, payload = ARGV[4 + 2 * (i - 2)], ARGV[5 + 2 * (i - 2)]
  redis.call('SET', KEYS[i], payload, 'PX', ARGV[4])
  redis.call(ARGV[5], ch, payload)
end
return 1`)

// Acquire implements Store.
func (s *RedisStore) Acquire(ctx context.Context, backend, holder string, ttl time.Duration) (bool, error) {
	n, err := acquireScript.Run(ctx, s.client, []string{s.leaseKey(backend)}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("acquire %s lease: %w", backend, err)
	}
	return n == 1, nil
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, backend, holder string) error {
	if err := releaseScript.Run(ctx, s.client, []string{s.leaseKey(backend)}, holder).Err(); err != nil {
		return fmt.Errorf("release %s lease: %w", backend, err)
	}
	return nil
}

// Cursor implements Store.
func (s *RedisStore) Cursor(ctx context.Context, backend string) ([]byte, error) {
	b, err := s.client.Get(ctx, s.cursorKey(backend)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s cursor: %w", backend, err)
	}
	return b, nil
}

// Commit implements Store.
func (s *RedisStore) Commit(ctx context.Context, backend, holder string, ttl time.Duration, msgs []Message, cursor []byte) error {
	keys := make([]string, 2, 2+len(msgs))
	keys[0], keys[1] = s.leaseKey(backend), s.cursorKey(backend)
	args := make([]any, 0, 6+2*len(msgs))
	args = append(args, holder, ttl.Milliseconds(), cursor, s.stateTTL.Milliseconds(), s.publish)
	for _, m := range msgs {
		keys = append(keys, s.stateKey(m.Stream))
		args = append(args, s.channelPrefix+m.Stream, m.Payload)
	}
	n, err := commitScript.Run(ctx, s.client, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("commit %d %s events: %w", len(msgs), backend, err)
	}
	if n != 1 {
		return ErrLeaseLost
	}
	return nil
}

// Last implements Store.
func (s *RedisStore) Last(ctx context.Context, streams []string) ([][]byte, error) {
	if len(streams) == 0 {
		return nil, nil
	}
	keys := make([]string, len(streams))
	for i, st := range streams {
		keys[i] = s.stateKey(st)
	}
	vals, err := s.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read last job state of %d streams: %w", len(streams), err)
	}
	var out [][]byte
	for _, v := range vals {
		if str, ok := v.(string); ok {
			out = append(out, []byte(str))
		}
	}
	return out, nil
}

// String names the store for logs.
func (s *RedisStore) String() string { return "redis (" + strconv.Quote(s.keyPrefix) + ")" }
