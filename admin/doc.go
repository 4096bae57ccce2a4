// Package admin is cablecar's admin listener: Prometheus metrics, the live
// status page's JSON and event stream, and the run-time log level. It
// observes the proxy through proxy.Hooks and never sits on the fan-out
// path for longer than a counter increment and a ring-buffer append.
//
// The HTTP interface is documented in docs/admin-api.md.
package admin
