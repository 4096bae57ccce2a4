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
	rdb    *goredis.Client
	prefix string // "" or prefix + ":"
}

func newRedisPublisher(rawURL, prefix string) (*redisPublisher, error) {
	opt, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis %q: %w", rawURL, err)
	}
	p := &redisPublisher{rdb: goredis.NewClient(opt)}
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
	url, key string
	client   *http.Client
	body     bytes.Buffer
}

// maxHTTPBody keeps each POST well under the server's 1 MiB limit.
const maxHTTPBody = 900 << 10

func newHTTPPublisher(url, key string) *httpPublisher {
	return &httpPublisher{url: url, key: key, client: &http.Client{Timeout: 30 * time.Second}}
}

func (p *httpPublisher) name() string { return "/_broadcast" }

func (p *httpPublisher) publish(ctx context.Context, msgs []message) (int, error) {
	for len(msgs) > 0 {
		p.body.Reset()
		p.body.WriteByte('[')
		n := 0
		for n < len(msgs) && (n == 0 || p.body.Len()+len(msgs[n].payload)+len(msgs[n].stream)+32 < maxHTTPBody) {
			if n > 0 {
				p.body.WriteByte(',')
			}
			p.body.WriteString(`{"stream":`)
			s, _ := json.Marshal(msgs[n].stream)
			p.body.Write(s)
			p.body.WriteString(`,"data":`)
			p.body.Write(msgs[n].payload)
			p.body.WriteByte('}')
			n++
		}
		p.body.WriteByte(']')
		if err := p.post(ctx); err != nil {
			return 0, err
		}
		msgs = msgs[n:]
	}
	return 0, nil
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
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: %s: %s", p.url, resp.Status, bytes.TrimSpace(out))
	}
	return nil
}

func (p *httpPublisher) close() { p.client.CloseIdleConnections() }
