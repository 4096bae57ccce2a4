package solidcable

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"
)

// table is Solid Cable's table (cable_schema.rb).
const table = "solid_cable_messages"

// timeLayout is how Active Record writes a datetime(6) in UTC. SQLite keeps
// it as text and compares it as text, so trimming must use the same form.
const timeLayout = "2006-01-02 15:04:05.000000"

// SQL error codes that mean the table is missing.
const (
	pgUndefinedTable    = "42P01"
	mysqlNoSuchTable    = 1146
	sqliteCantOpen      = 14 // SQLITE_CANTOPEN
	pgUndefinedColumn   = "42703"
	mysqlNoSuchColumn   = 1054
	sqlitePrimaryResult = 0xff
)

// placeholder is the n-th (1-based) bind variable.
func (d database) placeholder(n int) string {
	if d.kind == kindPostgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// maxIDQuery reads the newest id; the primary key answers it at once.
const maxIDQuery = "SELECT COALESCE(MAX(id), 0) FROM " + table

// pollQuery is the one statement a poll runs: the rows after from on the
// given channel hashes, except the ids in seen, oldest first, with each
// row's created_at as text (for the lag metric). PostgreSQL
// takes the lists as array parameters; the others get them as integer
// literals, which are safe (they are computed here, never read from
// input) and avoid the bind variable limits for thousands of streams.
func (d database) pollQuery(hashes []int64, from int64, seen []int64, limit int) (string, []any) {
	tail := " ORDER BY id LIMIT " + strconv.Itoa(limit)
	if d.kind == kindPostgres {
		if len(seen) == 0 {
			return "SELECT id, channel, payload, " + d.createdText() + " FROM " + table +
				" WHERE channel_hash = ANY($1) AND id > $2" + tail, []any{hashes, from}
		}
		return "SELECT id, channel, payload, " + d.createdText() + " FROM " + table +
			" WHERE channel_hash = ANY($1) AND id > $2 AND id <> ALL($3)" + tail, []any{hashes, from, seen}
	}
	var sb strings.Builder
	sb.WriteString("SELECT id, channel, payload, " + d.createdText() + " FROM " + table + " WHERE channel_hash IN (")
	writeInts(&sb, hashes)
	sb.WriteString(") AND id > ?")
	if len(seen) > 0 {
		sb.WriteString(" AND id NOT IN (")
		writeInts(&sb, seen)
		sb.WriteString(")")
	}
	sb.WriteString(tail)
	return sb.String(), []any{from}
}

// createdText selects created_at as text in timeLayout's form, whatever
// the column type, so every driver hands it over alike.
func (d database) createdText() string {
	switch d.kind {
	case kindPostgres:
		return "to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US')"
	case kindMySQL:
		return "DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f')"
	}
	return "created_at"
}

// writeInts writes ns comma separated.
func writeInts(sb *strings.Builder, ns []int64) {
	for i, n := range ns {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatInt(n, 10))
	}
}

// insertQuery writes one message with the columns SolidCable::Message
// .broadcast sets.
func (d database) insertQuery() string {
	return "INSERT INTO " + table + " (created_at, channel, payload, channel_hash) VALUES (" +
		d.placeholder(1) + ", " + d.placeholder(2) + ", " + d.placeholder(3) + ", " + d.placeholder(4) + ")"
}

// trimQuery deletes up to limit rows created before its one parameter, as
// SolidCable::TrimJob does (it skips rows another trimmer holds where the
// database can). MySQL refuses LIMIT in an IN subquery, hence the derived
// table there.
func (d database) trimQuery(limit int) string {
	sel := "SELECT id FROM " + table + " WHERE created_at < " + d.placeholder(1) + " LIMIT " + strconv.Itoa(limit)
	switch d.kind {
	case kindPostgres:
		return "DELETE FROM " + table + " WHERE id IN (" + sel + " FOR UPDATE SKIP LOCKED)"
	case kindMySQL:
		return "DELETE FROM " + table + " WHERE id IN (SELECT id FROM (" + sel + ") AS expired)"
	}
	return "DELETE FROM " + table + " WHERE id IN (" + sel + ")"
}

// describe turns a database error into words an operator can act on.
func (d database) describe(err error) error {
	switch d.classify(err) {
	case missingTable:
		return fmt.Errorf("solid_cable: table %s missing in %s: run bin/rails solid_cable:install and bin/rails db:prepare, or point CABLECAR_SOLID_CABLE_URL at the cable database of config/database.yml: %w", table, d.where, err)
	case oldSchema:
		return fmt.Errorf("solid_cable: %s in %s predates Solid Cable 3 (no channel_hash column): run bin/rails solid_cable:update and migrate: %w", table, d.where, err)
	case queryFailed:
		return fmt.Errorf("solid_cable: query on %s failed: %w", d.where, err)
	}
	return fmt.Errorf("solid_cable: database unreachable (%s): %w", d.where, err)
}

// errorClass sorts database errors by what the operator must do.
type errorClass int

const (
	unreachable errorClass = iota
	missingTable
	oldSchema
	queryFailed
)

func (d database) classify(err error) errorClass {
	var pgErr *pgconn.PgError
	var myErr *mysql.MySQLError
	var liteErr *sqlite.Error
	switch {
	case errors.As(err, &pgErr):
		switch {
		case pgErr.Code == pgUndefinedTable:
			return missingTable
		case pgErr.Code == pgUndefinedColumn && strings.Contains(pgErr.Message, "channel_hash"):
			return oldSchema
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57P"):
			return unreachable // connection exceptions, shutdown in progress
		}
		return queryFailed
	case errors.As(err, &myErr):
		switch {
		case myErr.Number == mysqlNoSuchTable:
			return missingTable
		case myErr.Number == mysqlNoSuchColumn && strings.Contains(myErr.Message, "channel_hash"):
			return oldSchema
		}
		return queryFailed
	case errors.As(err, &liteErr):
		msg := liteErr.Error()
		switch {
		case strings.Contains(msg, "no such table"):
			return missingTable
		case strings.Contains(msg, "no such column: channel_hash"):
			return oldSchema
		case liteErr.Code()&sqlitePrimaryResult == sqliteCantOpen:
			return unreachable
		}
		return queryFailed
	}
	return unreachable
}
