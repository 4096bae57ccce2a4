package main

import (
	"log/slog"

	"github.com/cablecar/cablecar/adapters/perform"
	"github.com/cablecar/cablecar/proxy"
)

// setPerformer makes srv forward client actions where CABLECAR_PERFORM_*
// says; with neither a stream nor a URL they stay ignored. The returned
// function releases what it opened.
func setPerformer(cfg config, srv *proxy.Server, log *slog.Logger) (func(), error) {
	p, closer, err := perform.New(cfg.Perform, cfg.Redis)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return func() {}, nil
	}
	srv.SetPerformer(p, cfg.Perform.Options())
	if cfg.Perform.Stream != "" {
		log.Info("client actions go to a Redis Stream", "stream", cfg.Perform.Stream)
	} else {
		log.Info("client actions go to an HTTP hook", "signed", cfg.Perform.Secret != "")
	}
	return func() { _ = closer.Close() }, nil
}
