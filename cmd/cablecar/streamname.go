package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cablecar/cablecar/rails"
)

// streamName prints what Channel.broadcasting_for(model, parts…) gives in
// Rails, so publishers in other languages get the name right.
func streamName(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stream-name", flag.ContinueOnError)
	channel := fs.String("channel", "", "channel class, e.g. DocumentChannel (required)")
	gid := fs.String("gid", "", "model and id, e.g. Document:123 or Chat::Room:7")
	app := fs.String("app", "", "GlobalID app (default $CABLECAR_GID_APP)")
	withPrefix := fs.Bool("redis", false, "print the Redis channel (with $CABLECAR_CHANNEL_PREFIX) instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *channel == "" {
		return fmt.Errorf("%w: cablecar stream-name --channel DocumentChannel [--gid Document:123] [PART…]", errUsage)
	}
	cfg, err := loadConfig(nil)
	if err != nil {
		return err
	}
	name, err := broadcastingName(*channel, *gid, *app, cfg.Auth.GIDApp)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		name += ":" + strings.Join(fs.Args(), ":")
	}
	if *withPrefix {
		name = rails.RedisChannel(cfg.Redis.ChannelPrefix, name)
	}
	fmt.Fprintln(stdout, name)
	return nil
}

// splitGID splits "Model:id" (the model may hold "::", as in Chat::Room:7).
func splitGID(gid string) (model, id string, err error) {
	i := strings.LastIndex(gid, ":")
	if i <= 0 || i == len(gid)-1 || strings.HasSuffix(gid[:i], ":") {
		return "", "", fmt.Errorf("--gid %q: want Model:id, e.g. Document:123", gid)
	}
	return gid[:i], gid[i+1:], nil
}
