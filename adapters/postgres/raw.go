package postgres

import (
	"encoding/base64"
	"errors"
	"strings"
)

// encodeRaw is the side-channel payload for stream and payload: both in
// standard base64, separated by a space.
func encodeRaw(stream string, payload []byte) string {
	enc := base64.StdEncoding
	var b strings.Builder
	b.Grow(enc.EncodedLen(len(stream)) + 1 + enc.EncodedLen(len(payload)))
	b.WriteString(enc.EncodeToString([]byte(stream)))
	b.WriteByte(' ')
	b.WriteString(enc.EncodeToString(payload))
	return b.String()
}

// decodeRaw undoes encodeRaw.
func decodeRaw(s string) (stream string, payload []byte, err error) {
	a, b, ok := strings.Cut(s, " ")
	if !ok {
		return "", nil, errors.New("no space between stream and payload")
	}
	st, err := base64.StdEncoding.DecodeString(a)
	if err != nil {
		return "", nil, err
	}
	payload, err = base64.StdEncoding.DecodeString(b)
	if err != nil {
		return "", nil, err
	}
	return string(st), payload, nil
}
