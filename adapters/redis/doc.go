// Package redis is the broker for a cablecar deployment next to Rails: it
// hears what Rails, Sidekiq and other jobs PUBLISH on Redis and publishes the
// same way, so cablecar and Rails' own Action Cable servers can share
// broadcasts.
//
// # What goes over the wire
//
// It does what Rails' Redis subscription adapter does
// (actioncable-protocol.md §4.4–4.5): a stream's channel is
// "<ChannelPrefix>:<stream>"; Publish is a plain PUBLISH on a pooled
// connection; one dedicated connection per process subscribes with plain
// SUBSCRIBE and UNSUBSCRIBE, never PSUBSCRIBE, named
// "cablecar-<hostname>-<pid>" in CLIENT LIST. Its first subscription is this
// node's private probe channel "<prefix>:cablecar/probe/<random id>", which
// also puts the connection into subscribe mode.
//
// # Topologies
//
// Config selects one of three: a single server (URL), Redis Sentinel
// (Sentinels and MasterName) or Redis Cluster (ClusterAddrs). Each uses
// go-redis's own client (NewClient, NewFailoverClient, NewClusterClient)
// behind one goredis.UniversalClient, for publishing and for the
// subscriber PubSub alike, so the rest of the broker is one code path. With
// Sentinel, every dial asks the sentinels for the current master, so after
// a failover the next generation connects to the promoted replica. With
// Cluster, the PubSub connects to the master of the probe channel's slot;
// classic PUBLISH on any node is forwarded over the cluster bus to every
// node, so one subscriber connection hears the whole cluster, as Rails'
// adapter assumes. The probe proves exactly that path. TLS and ACL users
// apply to every mode: in the URL (rediss://user:password@…), or through
// Username, Password, TLS and TLSCAFile for Sentinel and Cluster.
//
// # Sharded pub/sub
//
// With ShardedPubSub the broker listens with SSUBSCRIBE and publishes with
// SPUBLISH. On a single server or behind Sentinel that changes only the
// commands. On a Cluster a shard channel is delivered only by the master
// owning its slot, so one connection no longer hears everything: a
// shardSet (shard.go) keeps one inner Broker per master, each with its own
// subscriber connection and a probe channel whose hash tag puts it in that
// master's slots, and places each stream on the master of its slot. It
// reads CLUSTER SLOTS every ProbeInterval; when the map changes it starts
// Brokers for new masters, moves the streams whose slot changed owner
// (subscribing on the new master before the old one is let go) and
// retires masters that are gone. Redis also ends a shard subscription on
// its own, with an unasked SUNSUBSCRIBE, when the slot moves; the inner
// Broker tells the set, which reads the map at once. SSUBSCRIBE and
// SUNSUBSCRIBE refuse channels of different slots in one command, so
// batches are grouped by slot (slot.go computes CRC16 as CLUSTER KEYSLOT
// does).
//
// # Desired state, sent state
//
// The hub calls Subscribe and Unsubscribe with its own lock held, so they
// only update the wanted set and mark the stream dirty. One command
// goroutine compares wanted and sent for the dirty streams and writes
// batched SUBSCRIBE and UNSUBSCRIBE commands (up to 1,000 channels each).
// A stream is marked sent and in flight before its SUBSCRIBE is written,
// since Redis may acknowledge it before the write call returns. The receive
// goroutine counts acknowledgements; when a wanted stream has none in flight
// it calls active, which is the hub's cue to send confirm_subscription. A
// Subscribe that needs no command (Unsubscribe then Subscribe again before
// the command goroutine looked) still gets its active, from the command
// goroutine.
//
// # Why generations
//
// go-redis's PubSub reconnects and resubscribes on its own, silently. Redis
// keeps no pub/sub history, so each such reconnect is a gap in which
// broadcasts were lost without a word, and the acknowledgements of its
// resubscription would confuse the in-flight counts. So the broker never
// relies on it: on the first error that is not a read timeout it closes the
// PubSub, reports itself unhealthy, logs the loss once, waits (100 ms
// doubling to 5 s, with jitter), opens a fresh PubSub and subscribes every
// wanted stream again from a clean sent state. Each stream gets active once
// more when the new connection acknowledges it. Stats counts the gaps.
//
// # Why probes
//
// A connection can stop delivering without any error: a half-open TCP
// connection after a NAT or load balancer dropped it, or a pub/sub reconnect
// that never resumed (centrifugal/centrifugo#1189, where PUBLISH and PING
// kept succeeding while nothing was delivered). So every ProbeInterval the
// broker publishes a sequence number on its probe channel through the normal
// client, and Health is nil only while those probes come back through the
// subscriber connection. A probe missing for ProbeTimeout makes Health say
// "redis: pub/sub probe not received for 3s" and replaces the connection,
// unless the connection is still being read: under a saturated CPU the
// probe waits behind a backlog of messages the hub has yet to take, and
// replacing the connection would throw that backlog away. Such lag is
// logged once ("redis subscriber lagging") and Health stays nil; Redis's
// own client-output-buffer-limit for pub/sub bounds how far behind a node
// may fall before Redis disconnects it, which the broker then logs and
// recovers from like any other loss.
// Probes are never passed to the hub. Until the first probe returns, Health
// says "redis: not connected yet".
//
// # Why not PubSub.Channel
//
// Channel hides receive errors (it retries them every 100 ms), drops the
// subscription acknowledgements that active depends on, and blocks the read
// loop for up to 60 s when its Go channel is full. The receive goroutine
// calls ReceiveTimeout itself instead and hands each message to deliver,
// which must not block.
package redis
