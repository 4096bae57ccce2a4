package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The broadcast formats of Config.BroadcastFormat.
const (
	FormatActionCable = "actioncable"
	FormatAnyCable    = "anycable"
)

// anyCableChannel is the Redis channel AnyCable's redis broadcaster reads
// (its --redis_channel default).
const anyCableChannel = "__anycable__"

// message is one broadcast: a stream name and a JSON payload.
type message struct {
	stream  string
	payload []byte
}

// publisher sends one round of messages. It is used by one goroutine.
type publisher interface {
	// publish sends msgs; noListener counts messages nobody received
	// (Redis PUBLISH answered 0), when the publisher can tell.
	publish(ctx context.Context, msgs []message) (noListener int, err error)
	close()
	name() string
}

// redisPublisher PUBLISHes a round in one pipeline, as Rails' Redis adapter
// would from many processes.
type redisPublisher struct {
	rdb      *goredis.Client
	prefix   string // "" or prefix + ":"
	anyCable bool   // one PUBLISH of the round to anyCableChannel
	body     bytes.Buffer
}

func newRedisPublisher(rawURL, prefix string, anyCable bool) (*redisPublisher, error) {
	opt, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis %q: %w", rawURL, err)
	}
	p := &redisPublisher{rdb: goredis.NewClient(opt), anyCable: anyCable}
	if prefix != "" {
		p.prefix = prefix + ":"
	}
	return p, nil
}

func (p *redisPublisher) name() string { return "redis" }

func (p *redisPublisher) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

func (p *redisPublisher) publish(ctx context.Context, msgs []message) (int, error) {
	if p.anyCable {
		p.body.Reset()
		writeBatch(&p.body, msgs, true)
		if err := p.rdb.Publish(ctx, anyCableChannel, p.body.Bytes()).Err(); err != nil {
			return 0, fmt.Errorf("redis PUBLISH %s: %w", anyCableChannel, err)
		}
		return 0, nil
	}
	pipe := p.rdb.Pipeline()
	cmds := make([]*goredis.IntCmd, len(msgs))
	for i, m := range msgs {
		cmds[i] = pipe.Publish(ctx, p.prefix+m.stream, m.payload)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redis PUBLISH: %w", err)
	}
	none := 0
	for _, c := range cmds {
		if c.Val() == 0 {
			none++
		}
	}
	return none, nil
}

func (p *redisPublisher) close() { _ = p.rdb.Close() }

// httpPublisher POSTs a round to /_broadcast as arrays, each body under the
// server's 1 MiB cap.
type httpPublisher struct {
	url, key   string
	dataString bool // AnyCable's "data" is a string holding the JSON
	client     *http.Client
	body       bytes.Buffer
}

// maxHTTPBody keeps each POST well under the server's 1 MiB limit.
const maxHTTPBody = 900 << 10

func newHTTPPublisher(url, key string, anyCable bool) *httpPublisher {
	return &httpPublisher{url: url, key: key, dataString: anyCable, client: &http.Client{Timeout: 30 * time.Second}}
}

func (p *httpPublisher) name() string { return "/_broadcast" }

func (p *httpPublisher) publish(ctx context.Context, msgs []message) (int, error) {
	for len(msgs) > 0 {
		// As a JSON string a payload can grow, so count it twice.
		n, size := 0, 2
		for n < len(msgs) && (n == 0 || size+itemSize(msgs[n]) < maxHTTPBody) {
			size += itemSize(msgs[n])
			n++
		}
		p.body.Reset()
		writeBatch(&p.body, msgs[:n], p.dataString)
		if err := p.post(ctx); err != nil {
			return 0, err
		}
		msgs = msgs[n:]
	}
	return 0, nil
}

// itemSize bounds the bytes writeBatch writes for m, for a payload of
// ASCII text written verbatim or as a JSON string.
func itemSize(m message) int { return 2*len(m.payload) + 2*len(m.stream) + 32 }

// writeBatch writes msgs as a JSON array of {"stream","data"}, the data
// verbatim or, for AnyCable, as a JSON string.
func writeBatch(b *bytes.Buffer, msgs []message, dataString bool) {
	b.WriteByte('[')
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"stream":`)
		s, _ := json.Marshal(m.stream)
		b.Write(s)
		b.WriteString(`,"data":`)
		if dataString {
			d, _ := json.Marshal(string(m.payload))
			b.Write(d)
		} else {
			b.Write(m.payload)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
}

func (p *httpPublisher) post(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 { // cablecar answers 202, AnyCable 201
		return fmt.Errorf("POST %s: %s: %s", p.url, resp.Status, bytes.TrimSpace(out))
	}
	return nil
}

func (p *httpPublisher) close() { p.client.CloseIdleConnections() }
