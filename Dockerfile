# syntax=docker/dockerfile:1
# Multi-stage: a static binary on a distroless base, running as non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Same command as `make build` (which CI runs).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/cablecar ./cmd/cablecar

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cablecar /usr/local/bin/cablecar
USER nonroot:nonroot
EXPOSE 8080
# No shell or curl in the image: the binary checks its own /health.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/cablecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cablecar"]
CMD ["serve"]
