package postgres

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// maxIdentifier is PostgreSQL's identifier limit, NAMEDATALEN-1 bytes.
// Longer names are truncated by the server, so Rails hashes them.
const maxIdentifier = 63

// maxPayload is the largest NOTIFY payload PostgreSQL accepts with its
// default 8 kB pages: the server refuses 8000 bytes and more.
const maxPayload = 7999

// rawStream names the side channel that carries what a PostgreSQL text
// value cannot: a payload or stream name with a NUL byte or bytes that are
// not UTF-8. Only cablecar listens to it.
const rawStream = "cablecar:raw"

// Channel returns the PostgreSQL channel Action Cable's postgresql adapter
// uses for stream: prefix + ":" + stream (the stream alone without a
// prefix), replaced by its SHA-1 in lowercase hex when over 63 bytes.
//
// Rails releases up to 8.1 compare the length in characters, rails/rails
// main (commit 5b41c8a214a) in bytes, as here. They differ only for names
// of at most 63 characters but more than 63 bytes, which PostgreSQL
// truncates; those released Rails never delivers to its own subscribers.
func Channel(prefix, stream string) string {
	name := stream
	if prefix != "" {
		name = prefix + ":" + stream
	}
	if len(name) > maxIdentifier {
		sum := sha1.Sum([]byte(name))
		return hex.EncodeToString(sum[:])
	}
	return name
}

// isText reports whether s can be a PostgreSQL text value: UTF-8 without
// NUL bytes.
func isText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// quoteIdent quotes name as an SQL identifier, doubling inner quotes, as
// ruby-pg's escape_identifier does. name must satisfy isText.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
