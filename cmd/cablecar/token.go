package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cablecar/cablecar/auth"
)

// token mints a development JWT signed with CABLECAR_JWT_SECRET.
func token(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	sub := fs.String("sub", "", "subject (user id), required")
	streams := fs.String("streams", "", "comma-separated stream patterns for the streams claim, e.g. 'document:*,chat:room:lobby'")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sub == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: cablecar token --sub ID [--streams 'a:*,b'] [--ttl 1h]", errUsage)
	}
	cfg, err := loadConfig(nil)
	if err != nil {
		return err
	}
	if cfg.Auth.JWTSecret == "" {
		return fmt.Errorf("CABLECAR_JWT_SECRET is not set: tokens are signed with it (HS256)")
	}
	a, err := auth.New(auth.Config{JWTSecret: cfg.Auth.JWTSecret, StreamsClaim: cfg.Auth.StreamsClaim})
	if err != nil {
		return err
	}
	var patterns []string
	for _, p := range strings.Split(*streams, ",") {
		if p = strings.TrimSpace(p); p != "" {
			patterns = append(patterns, p)
		}
	}
	tok, err := a.Mint(*sub, patterns, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
