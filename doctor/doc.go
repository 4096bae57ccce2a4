// Package doctor checks a cablecar setup and says what to fix. It is what
// `cablecar doctor` runs when "it doesn't update": the settings, the JWT keys
// and routes, Redis (reachable, version, eviction policy, memory headroom,
// pub/sub delivery, running cablecar nodes), the Redis channels jobs really
// publish to, and a running cablecar's /health.
//
// Redis is reached with the broker's own client options (URL, Sentinel or
// Cluster; ACL users; TLS). With Sentinel, the checks run on the master the
// sentinels name, and the report names its address; with Cluster, the
// per-server checks run on every master, with one line per master where
// the masters differ.
//
// Each check returns Results with a Status (OK, SKIP, WARN, FAIL), a message
// and, for WARN and FAIL, what to do. Run collects them in a Report.
//
// The package reads no environment: the caller passes a Config. Every message
// is safe to print: passwords in URLs are masked, and tokens and message
// payloads never appear.
package doctor
