package redis

import "strings"

// slotCount is the number of hash slots in a Redis Cluster.
const slotCount = 16384

// crcTable is CRC-16/XMODEM (polynomial 0x1021), the checksum Redis
// Cluster hashes keys and shard channels with.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

// keySlot is the cluster slot of a key or shard channel: CRC16 of the key
// modulo 16384, or of its hash tag, the part between the first "{" and the
// next "}", when that part is not empty. It agrees with CLUSTER KEYSLOT.
func keySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^key[i]]
	}
	return int(crc) % slotCount
}
