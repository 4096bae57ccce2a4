package proxy

import "time"

// Hooks let an observer (metrics, the status page) hear what the server
// does. Every field may be nil. They run synchronously, some on the fan-out
// path, so they must be fast, must not block and must not call back into
// the server.
type Hooks struct {
	// ConnOpened runs once a connection is authenticated and welcomed.
	ConnOpened func(c ConnInfo)
	// ConnClosed runs when a welcomed connection ends, with why
	// ("client_gone", "client_closed", "too_slow", "server_restart", …).
	ConnClosed func(c ConnInfo, reason string)
	// AuthFailed runs for a connection refused as unauthorized or for its
	// origin; reason is a short code, detail the sentence that was logged.
	AuthFailed func(remote, reason, detail string)
	// Confirmed runs when confirm_subscription is sent.
	Confirmed func(c ConnInfo, channel string)
	// Rejected runs when reject_subscription is sent.
	Rejected func(c ConnInfo, channel, identifier, reason, detail string)
	// Unsubscribed runs when a confirmed subscription ends, by unsubscribe
	// or with its connection.
	Unsubscribed func(c ConnInfo, channel string)
	// Broadcast runs after a broker message was queued for every local
	// subscriber of stream; received is when the broker handed it over.
	// payload is only valid during the call.
	Broadcast func(stream string, payload []byte, delivered int, received time.Time)
	// Dropped runs for frames not delivered: reason "closed" (the
	// connection was already going) or "too_slow" (it fell behind).
	Dropped func(reason string, frames int)
}

// ConnInfo describes a connection for observers and listings.
type ConnInfo struct {
	ID            uint64    `json:"id"`
	User          string    `json:"user"`
	Remote        string    `json:"remote"`
	Since         time.Time `json:"since"`
	Subscriptions int       `json:"subscriptions"`
}

// StreamInfo describes a stream with local subscribers.
type StreamInfo struct {
	Name        string `json:"name"`
	Subscribers int    `json:"subscribers"`
}
