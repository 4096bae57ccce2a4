package solidcable

import (
	"crypto/sha256"
	"encoding/binary"
)

// ChannelHash is the channel_hash column Solid Cable stores and polls by:
// the first eight bytes of the SHA-256 digest of the channel name, read as
// a big-endian two's-complement int64 (Ruby's unpack1("q>"); signed
// because PostgreSQL and SQLite have no unsigned 64-bit integer).
// Different channels may share a hash, so rows are matched on the channel
// itself as well.
func ChannelHash(channel string) int64 {
	sum := sha256.Sum256([]byte(channel))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}
