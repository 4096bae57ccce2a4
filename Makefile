# `make test` is the one command that runs the whole suite on a fresh
# machine: it installs redis-server, Node.js and the JS client first.

GO ?= go
# The same static build the Dockerfile makes.
BUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w"

.PHONY: test deps build run

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...
# ...and the reader for platforms without epoll, on this Linux machine.
	$(GO) test -race -count=1 -tags cablecar_nopoll ./proxy/

deps:
	scripts/install-test-deps

build:
	$(BUILD) -o bin/cablecar ./cmd/cablecar

run:
	$(GO) run ./cmd/cablecar dev
