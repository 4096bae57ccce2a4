package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	legacysha1 "crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cablecar/cablecar/rails"
)

// Turbo key derivation, as Rails.application.key_generator does it for
// turbo-rails' default signed_stream_verifier_key.
const (
	turboSalt       = "turbo/signed_stream_verifier_key"
	turboIterations = 1000
	turboKeyLen     = 64
)

// digestHexLen is the length of a hex HMAC-SHA256 digest; the separator
// "--" sits right before it.
const digestHexLen = 2 * sha256.Size

// TurboKey derives Rails' turbo/signed_stream_verifier_key from
// secret_key_base: PBKDF2 with HMAC-SHA256 (sha1 false; apps with
// config.load_defaults 7.0 or later) or HMAC-SHA1 (sha1 true; older defaults,
// Rails 6.1, and apps whose key generator was memoized early), salt
// "turbo/signed_stream_verifier_key", 1000 iterations, 64 bytes.
//
// It returns nil only if the platform refuses the derivation (SHA1 in
// FIPS 140-only mode); VerifyStreamName ignores empty keys, so a nil key
// never verifies anything.
func TurboKey(secretKeyBase string, sha1 bool) []byte {
	h := sha256.New
	if sha1 {
		h = legacysha1.New
	}
	key, err := pbkdf2.Key(h, secretKeyBase, []byte(turboSalt), turboIterations, turboKeyLen)
	if err != nil {
		return nil
	}
	return key
}

// SignStreamName signs stream the way turbo-rails does (turbo_stream_from's
// signed-stream-name attribute): the strict Base64 of Ruby's JSON.dump of the
// string, "--", and the lowercase hex HMAC-SHA256 of that Base64 text under
// key.
//
// The JSON is written as Ruby writes it, not as encoding/json does: only
// '"', '\\' and control characters are escaped; "<", ">", "&", "/", U+2028,
// U+2029 and other non-ASCII text stay as they are. A stream that is not
// valid UTF-8 is signed byte for byte (Ruby would refuse it).
func SignStreamName(key []byte, stream string) string {
	data := base64.StdEncoding.EncodeToString(rubyJSONString(stream))
	return data + "--" + hex.EncodeToString(digest(key, data))
}

// VerifyStreamName returns the stream name inside signed if its digest
// verifies under any of keys, following ActiveSupport::MessageVerifier as
// turbo-rails configures it:
//
//   - signed must be ASCII and end in "--" plus 64 lowercase hex digits (an
//     upper-case digest is rejected, as Rails does); anything else is
//     ErrMalformedSignedName.
//   - The digest is compared in constant time with HMAC-SHA256(key, data)
//     for each non-empty key; no match is ErrBadSignedName.
//   - data is decoded as strict Base64, or failing that as URL-safe Base64
//     with or without padding, as ActiveSupport 7.2.3, 8.0.2 and 8.1 do.
//     Accepting the second form gives nothing to a forger: the digest has
//     already been checked over the exact text, so only the key holder can
//     produce either form.
//   - The decoded JSON must be a non-empty string. A Rails 7.1 metadata
//     envelope ({"_rails":…}), any other JSON value or trailing data is
//     ErrMalformedSignedName: turbo-rails never signs those.
//
// With no usable key it returns ErrNoTurboKey.
func VerifyStreamName(keys [][]byte, signed string) (string, error) {
	if !hasKey(keys) {
		return "", ErrNoTurboKey
	}
	data, sum, err := splitSigned(signed)
	if err != nil {
		return "", err
	}
	if !verifiesUnderAny(keys, data, sum) {
		return "", ErrBadSignedName
	}
	payload, err := decodeData(data)
	if err != nil {
		return "", err
	}
	return decodeName(payload)
}

// hasKey reports whether keys holds at least one non-empty key.
func hasKey(keys [][]byte) bool {
	for _, k := range keys {
		if len(k) > 0 {
			return true
		}
	}
	return false
}

// splitSigned separates data and the decoded digest, checking the shape
// before any cryptography runs.
func splitSigned(signed string) (data string, sum []byte, err error) {
	n := len(signed) - digestHexLen - len("--")
	if n <= 0 || signed[n:n+2] != "--" {
		return "", nil, fmt.Errorf("%w: want base64 data, \"--\" and a %d-digit hex digest", ErrMalformedSignedName, digestHexLen)
	}
	for i := 0; i < len(signed); i++ {
		if signed[i] >= 0x80 {
			return "", nil, fmt.Errorf("%w: non-ASCII byte at offset %d", ErrMalformedSignedName, i)
		}
	}
	hexSum := signed[n+2:]
	if strings.Trim(hexSum, "0123456789abcdef") != "" {
		return "", nil, fmt.Errorf("%w: digest is not lowercase hex", ErrMalformedSignedName)
	}
	sum, _ = hex.DecodeString(hexSum) // cannot fail: 64 lowercase hex digits
	return signed[:n], sum, nil
}

// verifiesUnderAny compares sum with the digest of data under each key,
// in constant time.
func verifiesUnderAny(keys [][]byte, data string, sum []byte) bool {
	for _, k := range keys {
		if len(k) > 0 && hmac.Equal(digest(k, data), sum) {
			return true
		}
	}
	return false
}

// digest is HMAC-SHA256(key, data), the MessageVerifier digest turbo-rails
// configures.
func digest(key []byte, data string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(data))
	return mac.Sum(nil)
}

// decodeData decodes the Base64 data part: strict first (what Rails
// generates), then Ruby's urlsafe_decode64 rules (what Rails >= 7.2.3 also
// accepts).
func decodeData(data string) ([]byte, error) {
	// Go's decoder skips CR and LF; Ruby's strict decoder does not.
	if strings.ContainsAny(data, "\r\n") {
		return nil, fmt.Errorf("%w: line break in base64 data", ErrMalformedSignedName)
	}
	if b, err := base64.StdEncoding.Strict().DecodeString(data); err == nil {
		return b, nil
	}
	// urlsafe_decode64 pads unpadded input, maps "-_" to "+/" and decodes
	// strictly, which also lets a mix of both alphabets through.
	s := data
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		s += strings.Repeat("=", 4-len(s)%4)
	}
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: data is not base64", ErrMalformedSignedName)
	}
	return b, nil
}

// decodeName extracts the stream name from the verified JSON payload.
func decodeName(payload []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("%w: payload is not JSON", ErrMalformedSignedName)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%w: data after the JSON value", ErrMalformedSignedName)
	}
	switch v := v.(type) {
	case string:
		if v == "" {
			return "", fmt.Errorf("%w: empty stream name", ErrMalformedSignedName)
		}
		return v, nil
	case map[string]any:
		if _, ok := v["_rails"]; ok {
			return "", fmt.Errorf("%w: Rails metadata envelope (purpose/expiry), which turbo-rails never signs", ErrMalformedSignedName)
		}
	}
	return "", fmt.Errorf("%w: payload is %s, not a JSON string", ErrMalformedSignedName, rails.JSONKind(v))
}

// rubyJSONString encodes s as Ruby's JSON.dump encodes a String.
func rubyJSONString(s string) []byte {
	const hexDigits = "0123456789abcdef"
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}
