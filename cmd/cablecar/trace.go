package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/cablecar/cablecar/rails"
	"github.com/cablecar/cablecar/trace"
)

// traceCmd follows streams live: `cablecar trace STREAM…` or
// `cablecar trace --channel DocumentChannel --gid Document:123`.
func traceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	channel := fs.String("channel", "", "channel class; with --gid, trace the stream Rails' stream_for would use")
	gid := fs.String("gid", "", "model and id, e.g. Document:123")
	app := fs.String("app", "", "GlobalID app (default $CABLECAR_GID_APP)")
	adminURL := fs.String("admin", "", "the sidecar's admin listener (default http://$CABLECAR_ADMIN_ADDR)")
	duration := fs.Duration("duration", 0, "stop after this long (default: until interrupted)")
	asJSON := fs.Bool("json", false, "one JSON object per broadcast")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(nil)
	if err != nil {
		return err
	}
	streams := fs.Args()
	if *channel != "" {
		name, err := broadcastingName(*channel, *gid, *app, cfg.Auth.GIDApp)
		if err != nil {
			return err
		}
		streams = append(streams, name)
	}
	if len(streams) == 0 {
		return fmt.Errorf("%w: cablecar trace STREAM… | --channel DocumentChannel --gid Document:123", errUsage)
	}
	if *adminURL == "" && cfg.Admin.Enabled() {
		*adminURL = "http://" + adminHostPort(cfg.Admin.Addr)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	ready := make(chan struct{})
	go func() {
		select {
		case <-ready:
			fmt.Fprintf(stderr, "tracing %v (ctrl-c to stop)\n", streams)
		case <-ctx.Done():
		}
	}()
	return trace.Run(ctx, trace.Options{Streams: streams, Redis: cfg.Redis, Prefix: cfg.Redis.ChannelPrefix,
		AdminURL: *adminURL, AdminToken: cfg.Admin.Token, JSON: *asJSON, Notes: stderr}, stdout, ready)
}

// adminHostPort turns a listen address into one to dial.
func adminHostPort(addr string) string {
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// broadcastingName is Channel.broadcasting_for(Model id) in Rails.
func broadcastingName(channel, gid, app, defaultApp string) (string, error) {
	if gid == "" {
		return rails.Broadcasting(channel), nil
	}
	model, id, err := splitGID(gid)
	if err != nil {
		return "", err
	}
	if app == "" {
		app = defaultApp
	}
	if app == "" {
		return "", fmt.Errorf("--gid needs the GlobalID app: pass --app or set CABLECAR_GID_APP")
	}
	return rails.Broadcasting(channel, rails.GlobalIDParam(app, model, id)), nil
}
