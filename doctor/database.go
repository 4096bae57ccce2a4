package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/cablecar/cablecar/adapters/postgres"
	"github.com/cablecar/cablecar/adapters/solidcable"
)

// The database brokers' check names.
const (
	namePostgres     = "postgres reachable"
	namePgNotify     = "postgres LISTEN/NOTIFY"
	namePgNodes      = "cablecar nodes"
	namePgPrefix     = "postgres channel names"
	nameSolidCable   = "solid_cable reachable"
	nameSolidTable   = "solid_cable table"
	nameSolidRows    = "solid_cable rows"
	nameSolidPolling = "solid_cable polling"
)

// dbTimeout bounds each database broker check.
const dbTimeout = 10 * time.Second

// expiredWarn is how many rows past message_retention doctor lets pass:
// autotrim deletes at most 100 rows on 2% of broadcasts, so some backlog is
// normal while it catches up.
const expiredWarn = 1000

// checkPostgres checks the PostgreSQL LISTEN/NOTIFY broker's database.
func checkPostgres(ctx context.Context, pc postgres.Config) []Result {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	shown := redactURL(pc.URL)
	c, err := postgres.CheckServer(ctx, pc)
	if err != nil {
		if c.Addr == "" { // the URL did not parse
			return []Result{{Status: Fail, Check: namePostgres, Message: err.Error(),
				Fix: "write CABLECAR_POSTGRES_URL as postgres://user:password@host:5432/app_production (the database of config/database.yml)"}}
		}
		if c.Version == "" {
			return []Result{{Status: Fail, Check: namePostgres, Message: fmt.Sprintf("%s: %v", shown, err),
				Fix: "start PostgreSQL, or point CABLECAR_POSTGRES_URL at the database the app's Action Cable uses"}}
		}
		return []Result{
			{Status: OK, Check: namePostgres, Message: fmt.Sprintf("%s: PostgreSQL %s", shown, c.Version)},
			{Status: Fail, Check: namePgNotify, Message: err.Error(),
				Fix: "LISTEN/NOTIFY needs a direct connection or a session-mode pooler; PgBouncer in transaction mode drops LISTEN: point CABLECAR_POSTGRES_URL past it"},
		}
	}
	rs := []Result{
		{Status: OK, Check: namePostgres, Message: fmt.Sprintf("%s: PostgreSQL %s", shown, c.Version)},
		{Status: OK, Check: namePgNotify, Message: fmt.Sprintf("a NOTIFY reached its LISTEN in %v", c.RoundTrip.Round(time.Microsecond))},
	}
	if c.Listeners == 0 {
		rs = append(rs, Result{Status: Warn, Check: namePgNodes,
			Message: "no running cablecar listens on this database (no connection named cablecar-listen)",
			Fix:     "start cablecar with this CABLECAR_POSTGRES_URL; Rails' NOTIFYs reach only listeners connected to the same database"})
	} else {
		rs = append(rs, Result{Status: OK, Check: namePgNodes, Message: fmt.Sprintf("%s listening on this database", plural(c.Listeners, "cablecar node"))})
	}
	example := postgres.Channel(pc.ChannelPrefix, "chat_room_1")
	return append(rs, Result{Status: OK, Check: namePgPrefix,
		Message: fmt.Sprintf("with %s, stream chat_room_1 is channel %q: Rails' config/cable.yml channel_prefix must match, or neither side hears the other", prefixSetting(pc.ChannelPrefix), example)})
}

// checkSolidCable checks the Solid Cable broker's database and table.
// Every query is a read: doctor never writes to the app's table.
func checkSolidCable(ctx context.Context, sc solidcable.Config) []Result {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	in, err := solidcable.Inspect(ctx, sc)
	switch {
	case err != nil && in.Where == "":
		return []Result{{Status: Fail, Check: nameSolidCable, Message: err.Error(),
			Fix: "write CABLECAR_SOLID_CABLE_URL as postgres://…, mysql://… or sqlite3:///abs/path/production_cable.sqlite3 (the cable database of config/database.yml)"}}
	case err != nil && !in.Reached:
		return []Result{{Status: Fail, Check: nameSolidCable, Message: err.Error(),
			Fix: "start the database, or point CABLECAR_SOLID_CABLE_URL at the cable database of config/database.yml"}}
	}
	reach := Result{Status: OK, Check: nameSolidCable, Message: fmt.Sprintf("%s database %s answers", in.Dialect, in.Where)}
	if !in.TableOK {
		return []Result{reach, {Status: Fail, Check: nameSolidTable, Message: err.Error(),
			Fix: "create it with bin/rails solid_cable:install and bin/rails db:prepare (solid_cable:update for an old one), or point the URL at the cable database"}}
	}
	rs := []Result{reach, {Status: OK, Check: nameSolidTable, Message: "solid_cable_messages is there, with its channel_hash column"}}
	if err != nil {
		return append(rs, Result{Status: Fail, Check: nameSolidRows, Message: err.Error()})
	}
	rs = append(rs, rowsResult(in, sc))
	return append(rs, pollingResult(in, sc))
}

// rowsResult reports the table's size by age, warning when expired rows
// pile up.
func rowsResult(in solidcable.Inspection, sc solidcable.Config) Result {
	retention := durationOr(sc.MessageRetention, solidcable.DefaultMessageRetention)
	msg := fmt.Sprintf("%s: %d from the last minute, %d older than the message retention (%v)",
		plural(int(in.Rows), "row"), in.Recent, in.Expired, retention)
	if in.Expired < expiredWarn {
		return Result{Status: OK, Check: nameSolidRows, Message: msg}
	}
	if !sc.Trim {
		return Result{Status: Warn, Check: nameSolidRows,
			Message: msg + ": nothing seems to trim them. Rails' autotrim deletes expired rows only as Rails itself broadcasts (100 rows on 2% of its broadcasts), and CABLECAR_SOLID_CABLE_TRIM is off",
			Fix:     "set CABLECAR_SOLID_CABLE_TRIM=true when cablecar publishes most messages; else check cable.yml's autotrim (default true) and that Rails broadcasts through Solid Cable"}
	}
	return Result{Status: Warn, Check: nameSolidRows,
		Message: msg + ": trimming falls behind (CABLECAR_SOLID_CABLE_TRIM is on)",
		Fix:     "make CABLECAR_SOLID_CABLE_MESSAGE_RETENTION match cable.yml's message_retention, or delete the backlog once: DELETE FROM solid_cable_messages WHERE created_at < now() - interval '1 day'"}
}

// pollingResult reports the poll query's cost and the latency polling
// adds.
func pollingResult(in solidcable.Inspection, sc solidcable.Config) Result {
	interval := durationOr(sc.PollingInterval, solidcable.DefaultPollingInterval)
	msg := fmt.Sprintf("one poll query took %v; a message waits for the next poll: up to %v (the polling interval) plus the query, about %v on average",
		in.PollTime.Round(time.Microsecond), interval, (interval/2 + in.PollTime).Round(time.Millisecond))
	if in.PollTime > interval/2 {
		return Result{Status: Warn, Check: nameSolidPolling, Message: msg + ": the query takes over half the interval",
			Fix: "check the index on channel_hash (bin/rails solid_cable:update) and trim old rows; or raise CABLECAR_SOLID_CABLE_POLLING_INTERVAL"}
	}
	return Result{Status: OK, Check: nameSolidPolling, Message: msg}
}

// durationOr returns d, or def when d is zero.
func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// memoryBrokerLine is the SKIP line for the in-memory broker.
func memoryBrokerLine() Result {
	return Result{Status: Skip, Check: nameRedis,
		Message: "no broker is configured (CABLECAR_REDIS_URL, CABLECAR_POSTGRES_URL, CABLECAR_SOLID_CABLE_URL): using the in-memory broker: single node only, and jobs cannot publish to it"}
}
