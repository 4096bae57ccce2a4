// Package proxy is cablecar's WebSocket server: the Action Cable protocol,
// connections, and the hub that fans broker messages out to subscribers.
//
// # Data flow
//
// A broker (adapters/memory, redis, postgres, solidcable) hands each message to the hub,
// which looks up the stream's shard, encodes the frame once per distinct
// identifier and queues the same bytes on every subscribed connection. A
// connection has at most one reader and at most one writer at a time.
// Connections that need a writer go to the writer pool (one goroutine per
// core, writer.go) in batches of 64. A writer puts what the socket takes
// at once on it with one raw send on the socket's descriptor
// (rawwrite_linux.go) and moves on; a socket that is full gets a flusher
// goroutine of its own that waits with the write deadline, gone when the
// queue is empty. Pings go the same way, one eighth of the connections at
// a time. On Linux the reader too is short-lived: an idle socket waits in
// the poller's epoll set (poll_linux.go, read.go), so an idle connection
// costs no goroutine; elsewhere it keeps one parked reader.
//
// Clients of the AnyCable extended protocol (actioncable-v1-ext-json)
// take a few more paths: on streams with history (package history) they
// subscribe to the recorded copies, whose frames carry the stream's epoch
// and offset, and can ask for what they missed (history.go); their
// sessions can be restored after a reconnect (session.go). Their extra
// state lives beside the connection and subscription structs, so plain
// clients pay one branch and no memory for it.
//
// A socket is closed only by the holder of its writer role, or when no one
// holds it, so a raw send never meets a descriptor closed and reused under
// it.
//
// Two optional parts run beside the fan-out and never on its path. A
// Replayer (replay.go; adapters/jobs keeps the last job event per stream)
// sends a new subscription, from a goroutine of its own, what its streams
// last carried, right after confirm_subscription. A Performer (perform.go)
// takes client actions (the message command) from the reader without a
// lock or a wait, through a bounded queue per worker, dropping and counting
// when a queue is full.
//
// # Lock order
//
//	hub stream shard → conn.mu
//	hub conn shard   → conn.mu
//
// The poller takes a hub conn shard lock (to find a connection by id) and
// then conn.mu, never both at once.
//
// conn.mu is never held while taking a hub lock, and no lock is held during
// socket IO. Nothing that may end a connection (a failed write, closing
// its socket: writeFailed, socketClosed) runs under a hub lock, since
// ending takes the hub's locks: the hub only queues frames, and writes
// happen on the writer pool or a flusher, with no lock held.
//
// Broker.Subscribe and Broker.Unsubscribe are called under a stream shard
// lock and must not block.
package proxy
