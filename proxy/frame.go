package proxy

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
)

// Server frames are whole WebSocket frames (header and payload), built once
// and shared: a broadcast is encoded once per distinct identifier on a stream
// and the same immutable slice is queued on every subscriber. Nothing may
// write into a frame after it has been queued.

// WebSocket close codes cablecar sends (RFC 6455 §7.4.1).
const (
	closeNormal      = 1000
	closeProtocolErr = 1002
	closeTooBig      = 1009
	closePolicy      = 1008
)

var (
	frameWelcome = textFrame([]byte(`{"type":"welcome"}`))

	frameDisconnectUnauthorized = textFrame([]byte(`{"type":"disconnect","reason":"unauthorized","reconnect":false}`))
	frameDisconnectRestart      = textFrame([]byte(`{"type":"disconnect","reason":"server_restart","reconnect":true}`))
	frameDisconnectRemote       = textFrame([]byte(`{"type":"disconnect","reason":"remote","reconnect":true}`))
	frameDisconnectRemoteFinal  = textFrame([]byte(`{"type":"disconnect","reason":"remote","reconnect":false}`))
	frameDisconnectTooSlow      = textFrame([]byte(`{"type":"disconnect","reason":"too_slow","reconnect":true}`))

	frameCloseNormal   = closeFrame(closeNormal)
	frameCloseProtocol = closeFrame(closeProtocolErr)
	frameCloseTooBig   = closeFrame(closeTooBig)
	frameClosePolicy   = closeFrame(closePolicy)
)

// appendHeader appends an unmasked, final frame header with opcode op for a
// payload of n bytes. Servers never mask (RFC 6455 §5.1).
func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// headerLen is the size appendHeader needs for an n-byte payload.
func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// textFrame wraps payload in a text frame.
func textFrame(payload []byte) []byte {
	b := make([]byte, 0, headerLen(len(payload))+len(payload))
	return append(appendHeader(b, 0x1, len(payload)), payload...)
}

// closeFrame builds a close frame carrying code and no reason text.
func closeFrame(code uint16) []byte {
	return binary.BigEndian.AppendUint16(appendHeader(nil, 0x8, 2), code)
}

// pongFrame answers a ping with its own payload (at most 125 bytes).
func pongFrame(payload []byte) []byte {
	b := make([]byte, 0, 2+len(payload))
	return append(appendHeader(b, 0xA, len(payload)), payload...)
}

// pingFrame is the Action Cable heartbeat for the given Unix time.
func pingFrame(unix int64) []byte {
	p := make([]byte, 0, 40)
	p = append(p, `{"type":"ping","message":`...)
	p = strconv.AppendInt(p, unix, 10)
	p = append(p, '}')
	return textFrame(p)
}

// quoteIdentifier encodes an identifier as a JSON string the way Rails does:
// encoding/json escapes <, >, & and U+2028/9 exactly as ActiveSupport::JSON.
func quoteIdentifier(identifier string) []byte {
	b, _ := json.Marshal(identifier) // a string always encodes
	return b
}

// identifierFrame builds {"identifier":<quoted>,"type":"<typ>"}.
func identifierFrame(quoted []byte, typ string) []byte {
	const a, b = `{"identifier":`, `,"type":"`
	n := len(a) + len(quoted) + len(b) + len(typ) + 2
	f := make([]byte, 0, headerLen(n)+n)
	f = appendHeader(f, 0x1, n)
	f = append(f, a...)
	f = append(f, quoted...)
	f = append(f, b...)
	f = append(f, typ...)
	return append(f, '"', '}')
}

// messageFrame builds {"identifier":<quoted>,"message":<payload>} with the
// payload spliced in verbatim: no decode and re-encode, so big integers,
// 1.0 and key order reach the client as the publisher wrote them.
func messageFrame(quoted, payload []byte) []byte {
	const a, b = `{"identifier":`, `,"message":`
	n := len(a) + len(quoted) + len(b) + len(payload) + 1
	f := make([]byte, 0, headerLen(n)+n)
	f = appendHeader(f, 0x1, n)
	f = append(f, a...)
	f = append(f, quoted...)
	f = append(f, b...)
	f = append(f, payload...)
	return append(f, '}')
}
