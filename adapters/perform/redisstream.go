package perform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/proxy"
)

// RedisStream appends each action to a Redis Stream, trimmed to about
// MaxLen entries. An entry's fields, in order (every value a string):
//
//	identifier             the subscription's identifier, as the client sent it
//	channel                its "channel"
//	streams                JSON array of the subscription's streams
//	action                 the action ("receive" when the data has none)
//	data                   the data object, JSON, as the client sent it
//	user                   the token's sub; "" when anonymous
//	claims                 JSON object of the token's claims; null when anonymous
//	connection_identifier  Rails' connection identifier; "" when not configured
//	conn                   the connection's number in this cablecar process
//	at                     when cablecar read the action, RFC 3339 UTC, nanoseconds
type RedisStream struct {
	client goredis.UniversalClient
	stream string
	maxLen int64
}

// NewRedisStream returns a Performer that XADDs to stream on client;
// maxLen 0 means DefaultStreamMaxLen.
func NewRedisStream(client goredis.UniversalClient, stream string, maxLen int64) *RedisStream {
	if maxLen <= 0 {
		maxLen = DefaultStreamMaxLen
	}
	return &RedisStream{client: client, stream: stream, maxLen: maxLen}
}

// Perform adds one entry: XADD stream MAXLEN ~ maxLen * field value ….
func (r *RedisStream) Perform(ctx context.Context, a proxy.Action) error {
	fields, err := streamFields(a)
	if err != nil {
		return &causeError{cause: "encode", err: err}
	}
	args := &goredis.XAddArgs{Stream: r.stream, MaxLen: r.maxLen, Approx: true, ID: "*", Values: fields}
	if err := r.client.XAdd(ctx, args).Err(); err != nil {
		return &causeError{cause: "redis", err: fmt.Errorf("XADD %s: %w", r.stream, err)}
	}
	return nil
}

// streamFields lists an entry's field-value pairs in their documented order.
func streamFields(a proxy.Action) ([]any, error) {
	streams, err := marshal(a.Streams)
	if err != nil {
		return nil, fmt.Errorf("encode streams: %w", err)
	}
	claims, err := marshal(a.Claims)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	return []any{
		"identifier", a.Identifier,
		"channel", a.Channel,
		"streams", streams,
		"action", a.Name,
		"data", string(a.Data),
		"user", a.User,
		"claims", claims,
		"connection_identifier", a.ConnectionID,
		"conn", strconv.FormatUint(a.Conn, 10),
		"at", a.At.UTC().Format(time.RFC3339Nano),
	}, nil
}

// marshal is json.Marshal without HTML escaping and the trailing newline:
// workers see "<" as "<", as the client sent it. A nil slice is [].
func marshal(v any) (string, error) {
	if s, ok := v.([]string); ok && s == nil {
		v = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
