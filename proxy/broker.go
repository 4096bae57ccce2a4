package proxy

import "context"

// Broker carries broadcasts from publishers to this process. The hub decides
// which streams it needs; the broker keeps exactly that set subscribed,
// across reconnects, and reports when each subscription is live.
//
// Subscribe and Unsubscribe are called with a hub shard lock held: they must
// only record the request and return, never do IO or call back into the hub.
// Calls for one stream arrive in the order the hub made them, and the broker
// must apply them in that order.
//
// The in-memory broker (adapters/memory) and the Redis broker
// (adapters/redis) implement it.
type Broker interface {
	// Run delivers until ctx is done. deliver is called for every message on
	// a subscribed stream, one call at a time, and must not block; payload is
	// only valid during the call. active is called (never from inside
	// Subscribe) once every Subscribe made so far for stream has been
	// acknowledged, so a message published after that reaches deliver.
	Run(ctx context.Context, deliver func(stream string, payload []byte), active func(stream string)) error
	// Subscribe asks for stream's messages.
	Subscribe(stream string)
	// Unsubscribe says the hub no longer needs stream.
	Unsubscribe(stream string)
	// Publish sends payload to every subscriber of stream on every node.
	Publish(ctx context.Context, stream string, payload []byte) error
	// Health reports nil when delivery works, else an error whose text says
	// what is wrong in words an operator can act on.
	Health(ctx context.Context) error
}
