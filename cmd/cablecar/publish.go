package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/cablecar/cablecar/adapters/redis"
)

// publish sends one message: straight to Redis when CABLECAR_REDIS_URL is
// set, else through a running cablecar's POST /_broadcast.
func publish(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	url := fs.String("url", "", "cablecar base URL for /_broadcast (default http://127.0.0.1:<port of CABLECAR_ADDR>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: cablecar publish [--url URL] STREAM JSON", errUsage)
	}
	stream, data := fs.Arg(0), []byte(fs.Arg(1))
	if !json.Valid(data) {
		return fmt.Errorf("message %q is not valid JSON (a string needs quotes: '\"hello\"')", data)
	}
	cfg, err := loadConfig(nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if cfg.Redis.Configured() {
		b, err := redis.New(cfg.Redis, nil)
		if err != nil {
			return err
		}
		defer b.Close()
		if err := b.Publish(ctx, stream, data); err != nil {
			return fmt.Errorf("publish %q to redis: %w", stream, err)
		}
		fmt.Fprintf(stdout, "published %d bytes to %q through redis\n", len(data), stream)
		return nil
	}
	return publishHTTP(ctx, baseURL(*url, cfg.Proxy.Addr), cfg.Proxy.BroadcastKey, stream, data, stdout)
}

func baseURL(flagURL, addr string) string {
	if flagURL != "" {
		return flagURL
	}
	port := "8080"
	if _, p, err := net.SplitHostPort(addr); err == nil && p != "" {
		port = p
	}
	return "http://127.0.0.1:" + port
}

func publishHTTP(ctx context.Context, base, key, stream string, data []byte, stdout io.Writer) error {
	body, _ := json.Marshal(map[string]any{"stream": stream, "data": json.RawMessage(data)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_broadcast", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("publish %q via %s/_broadcast: %w (is cablecar running? set CABLECAR_REDIS_URL to publish to Redis directly)", stream, base, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		hint := ""
		if resp.StatusCode == http.StatusNotFound {
			hint = " (the endpoint is off: set CABLECAR_BROADCAST_KEY on the server and here)"
		}
		return fmt.Errorf("publish %q: %s: %s%s", stream, resp.Status, bytes.TrimSpace(out), hint)
	}
	fmt.Fprintf(stdout, "published %d bytes to %q via %s: %s\n", len(data), stream, base, bytes.TrimSpace(out))
	return nil
}
