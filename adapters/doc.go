// Package adapters holds the brokers that carry broadcasts to the proxy's
// hub; each satisfies proxy.Broker without importing proxy.
//
//   - memory: single node; Publish delivers in-process. For development and
//     for deployments where every broadcast comes through POST /_broadcast.
//   - redis: Redis pub/sub, compatible with Rails' Action Cable Redis
//     adapter, so broadcasts from Rails and its jobs reach cablecar and
//     several cablecar nodes share them.
//
// adapters/internal/brokertest is the contract test both run.
package adapters
