// Package adapters holds the brokers that carry broadcasts to the proxy's
// hub; each satisfies proxy.Broker without importing proxy.
//
//   - memory: single node; Publish delivers in-process. For development and
//     for deployments where every broadcast comes through POST /_broadcast.
//   - redis: Redis pub/sub, compatible with Rails' Action Cable Redis
//     adapter, so broadcasts from Rails and its jobs reach cablecar and
//     several cablecar nodes share them.
//   - postgres: PostgreSQL LISTEN/NOTIFY, compatible with Action Cable's
//     postgresql adapter (CABLECAR_POSTGRES_URL).
//   - solidcable: Rails 8's Solid Cable, polling the solid_cable_messages
//     table on PostgreSQL, SQLite or MySQL with one indexed query per
//     interval (CABLECAR_SOLID_CABLE_URL).
//
// adapters/internal/brokertest is the contract test they all run;
// adapters/internal/outage is the backoff and outage logging the brokers
// with a server share.
package adapters
