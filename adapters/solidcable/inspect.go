package solidcable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// probeChannel is the channel Inspect polls for: one no app uses, so the
// poll matches no row and measures the query's own cost.
const probeChannel = "cablecar:doctor:probe"

// recentWindow is how far back Inspection.Recent counts rows.
const recentWindow = time.Minute

// Inspection is what a read-only look at the Solid Cable table finds, for
// `cablecar doctor`.
type Inspection struct {
	// Where names the database: host and database, or the SQLite file;
	// never a password.
	Where string
	// Dialect is "postgres", "sqlite" or "mysql".
	Dialect string
	// Reached reports that the database answered; TableOK that the table
	// and its channel_hash column are there.
	Reached, TableOK bool
	// PollTime is how long the broker's poll query took, run once for an
	// unused channel over the whole table.
	PollTime time.Duration
	// Rows counts the table's rows; Expired those older than
	// MessageRetention, which trimming may delete; Recent those created in
	// the last minute.
	Rows, Expired, Recent int64
}

// Inspect connects to cfg's database as the broker would and reads, never
// writes: it runs the broker's poll query once and counts rows by age. On
// failure the error says why in the words Health uses (unreachable, table
// missing, no channel_hash column), and the Inspection says how far it
// got.
func Inspect(ctx context.Context, cfg Config) (Inspection, error) {
	cfg = cfg.withDefaults()
	db, err := parseURL(cfg.URL)
	if err := errors.Join(err, cfg.check()); err != nil {
		return Inspection{}, err
	}
	in := Inspection{Where: db.where, Dialect: db.kind.String()}
	pool, err := sql.Open(db.driver, db.dsn)
	if err != nil {
		return in, fmt.Errorf("solid_cable: open %s: %w", db.where, err)
	}
	defer pool.Close()
	if err := pool.PingContext(ctx); err != nil {
		return in, db.describe(err)
	}
	in.Reached = true
	query, args := db.pollQuery([]int64{ChannelHash(probeChannel)}, 0, nil, 1)
	start := time.Now()
	rows, err := pool.QueryContext(ctx, query, args...)
	if err == nil {
		for rows.Next() { // nothing uses the probe channel; drain regardless
		}
		err = errors.Join(rows.Err(), rows.Close())
	}
	in.PollTime = time.Since(start)
	if err != nil {
		return in, db.describe(err)
	}
	in.TableOK = true
	now := time.Now()
	counts := []struct {
		n     *int64
		where string
		arg   []any
	}{
		{&in.Rows, "", nil},
		{&in.Expired, " WHERE created_at < " + db.placeholder(1), []any{now.Add(-cfg.MessageRetention).UTC().Format(timeLayout)}},
		{&in.Recent, " WHERE created_at >= " + db.placeholder(1), []any{now.Add(-recentWindow).UTC().Format(timeLayout)}},
	}
	for _, c := range counts {
		if err := pool.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+c.where, c.arg...).Scan(c.n); err != nil {
			return in, fmt.Errorf("count rows: %w", db.describe(err))
		}
	}
	return in, nil
}

// String names the dialect.
func (k kind) String() string {
	switch k {
	case kindPostgres:
		return "postgres"
	case kindSQLite:
		return "sqlite"
	}
	return "mysql"
}
