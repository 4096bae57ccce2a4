package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// turboVector is one signed name from turbo_signed_stream_names.json.
type turboVector struct {
	Call       string `json:"call"`
	Stream     string `json:"stream_name"`
	Signed     string `json:"signed_stream_name"`
	Base64Part string `json:"base64_part"`
	Decoded    string `json:"base64_decoded"`
	HMACHex    string `json:"hmac_hex"`
	Verified   string `json:"verified_back"`
	Identifier string `json:"identifier_sent_by_turbo_js"`
}

// turboNegative is one message Rails refused (or, for URL-safe Base64,
// refused only before 7.2.3).
type turboNegative struct {
	Case     string  `json:"case"`
	Message  string  `json:"message"`
	Verified *string `json:"verified_result"`
}

// turboRun is the output of one ActiveSupport version.
type turboRun struct {
	Version       string `json:"activesupport_version"`
	SecretKeyBase string `json:"secret_key_base"`
	KeyDerivation struct {
		SHA256 string `json:"key_sha256_hex"`
		SHA1   string `json:"key_sha1_hex"`
	} `json:"key_derivation"`
	SHA256    []turboVector   `json:"vectors_key_sha256"`
	SHA1      []turboVector   `json:"vectors_key_sha1"`
	Negatives []turboNegative `json:"negative_cases_key_sha256"`
}

type turboFile struct {
	Identical bool     `json:"identical_signed_names_and_keys_6_1_vs_8_1_3"`
	AS61      turboRun `json:"activesupport_6_1"`
	AS813     turboRun `json:"activesupport_8_1_3"`
	Compared  []struct {
		Case    string  `json:"case"`
		Message string  `json:"message"`
		As61    *string `json:"as_6_1_verified"`
		As813   *string `json:"as_8_1_3_verified"`
	} `json:"negative_cases_compared"`
}

func loadJSONFile(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
}

func loadTurbo(t testing.TB) turboFile {
	t.Helper()
	var f turboFile
	loadJSONFile(t, "turbo_signed_stream_names.json", &f)
	if len(f.AS813.SHA256) == 0 || len(f.AS61.SHA1) == 0 || len(f.AS813.Negatives) == 0 {
		t.Fatal("turbo vectors incomplete")
	}
	return f
}

func TestTurboKeyVectors(t *testing.T) {
	f := loadTurbo(t)
	for _, run := range []turboRun{f.AS61, f.AS813} {
		if got := hex.EncodeToString(TurboKey(run.SecretKeyBase, false)); got != run.KeyDerivation.SHA256 {
			t.Errorf("AS %s: TurboKey(sha256) = %s, want %s", run.Version, got, run.KeyDerivation.SHA256)
		}
		if got := hex.EncodeToString(TurboKey(run.SecretKeyBase, true)); got != run.KeyDerivation.SHA1 {
			t.Errorf("AS %s: TurboKey(sha1) = %s, want %s", run.Version, got, run.KeyDerivation.SHA1)
		}
	}
}

// TestTurboSignedVectors signs and verifies every vector, for both
// ActiveSupport versions and both key derivations, byte for byte.
func TestTurboSignedVectors(t *testing.T) {
	f := loadTurbo(t)
	for _, run := range []turboRun{f.AS61, f.AS813} {
		keys := map[string][]byte{
			"sha256": TurboKey(run.SecretKeyBase, false),
			"sha1":   TurboKey(run.SecretKeyBase, true),
		}
		sets := map[string][]turboVector{"sha256": run.SHA256, "sha1": run.SHA1}
		for kind, vectors := range sets {
			for _, v := range vectors {
				t.Run(run.Version+"/"+kind+"/"+v.Call, func(t *testing.T) {
					checkTurboVector(t, keys[kind], v)
					// Both derived keys configured, as New does it.
					all := [][]byte{keys["sha256"], keys["sha1"]}
					if got, err := VerifyStreamName(all, v.Signed); err != nil || got != v.Stream {
						t.Errorf("VerifyStreamName(both keys) = %q, %v; want %q", got, err, v.Stream)
					}
				})
			}
		}
	}
}

func checkTurboVector(t *testing.T, key []byte, v turboVector) {
	t.Helper()
	if got := SignStreamName(key, v.Stream); got != v.Signed {
		t.Errorf("SignStreamName(%q) =\n %s\nwant\n %s", v.Stream, got, v.Signed)
	}
	if got := string(rubyJSONString(v.Stream)); got != v.Decoded {
		t.Errorf("JSON of %q = %s, want %s", v.Stream, got, v.Decoded)
	}
	data, sum, _ := strings.Cut(v.Signed, "--")
	if data != v.Base64Part || sum != v.HMACHex {
		t.Errorf("vector parts inconsistent: %q %q", data, sum)
	}
	got, err := VerifyStreamName([][]byte{key}, v.Signed)
	if err != nil || got != v.Stream || got != v.Verified {
		t.Errorf("VerifyStreamName = %q, %v; want %q", got, err, v.Stream)
	}
}

// TestTurboNegativeVectors checks every message Rails 8.1.3 refused is
// refused, with the reason cablecar logs, and that the one it accepts (URL-safe
// Base64, accepted since ActiveSupport 7.2.3) gives the same stream.
func TestTurboNegativeVectors(t *testing.T) {
	f := loadTurbo(t)
	wantReason := map[string]string{
		"tampered_digest_last_char":                       "bad_signed_stream_name",
		"uppercase_hex_digest":                            "malformed_signed_stream_name",
		"urlsafe_unpadded_base64_same_hmac_over_new_text": "",
		"sha1_key_message_checked_with_sha256_key":        "bad_signed_stream_name",
		"missing_separator":                               "malformed_signed_stream_name",
		"empty":                                           "malformed_signed_stream_name",
	}
	for _, run := range []turboRun{f.AS61, f.AS813} {
		key := [][]byte{TurboKey(run.SecretKeyBase, false)}
		for _, n := range run.Negatives {
			t.Run(run.Version+"/"+n.Case, func(t *testing.T) {
				want, known := wantReason[n.Case]
				if !known {
					t.Fatalf("new negative case %q: decide its reason", n.Case)
				}
				got, err := VerifyStreamName(key, n.Message)
				if r := Reason(err); r != want {
					t.Fatalf("Reason = %q (err %v), want %q", r, err, want)
				}
				if err != nil {
					return
				}
				// Accepted: cablecar follows ActiveSupport >= 7.2.3, so
				// the result must be what 8.1.3 returned.
				if run.Version == "8.1.3" && (n.Verified == nil || got != *n.Verified) {
					t.Errorf("got %q, Rails %s verified %v", got, run.Version, n.Verified)
				}
			})
		}
	}
	for _, c := range f.Compared {
		if c.Case == "urlsafe_unpadded_base64_same_hmac_over_new_text" && (c.As61 != nil || c.As813 == nil) {
			t.Errorf("vectors changed: %s as_6_1=%v as_8_1_3=%v", c.Case, c.As61, c.As813)
		}
	}
}

// TestTurboIndependentCheck ties our choices to the independent (Node)
// re-implementation: every vector verified there, and our negatives follow its
// accept-URL-safe column.
func TestTurboIndependentCheck(t *testing.T) {
	var ind struct {
		SHA256OK  bool `json:"key_sha256_matches_ruby"`
		SHA1OK    bool `json:"key_sha1_matches_ruby"`
		AllOK     bool `json:"all_ok"`
		Negatives []struct {
			Case   string  `json:"case"`
			Accept *string `json:"independent_accept_urlsafe"`
		} `json:"negatives"`
	}
	loadJSONFile(t, "turbo_independent_check.json", &ind)
	if !ind.AllOK || !ind.SHA256OK || !ind.SHA1OK || len(ind.Negatives) == 0 {
		t.Fatal("independent check did not pass or is empty")
	}
	f := loadTurbo(t)
	key := [][]byte{TurboKey(f.AS813.SecretKeyBase, false)}
	msgs := map[string]string{}
	for _, n := range f.AS813.Negatives {
		msgs[n.Case] = n.Message
	}
	for _, n := range ind.Negatives {
		msg, ok := msgs[n.Case]
		if !ok {
			t.Fatalf("case %q missing from turbo_signed_stream_names.json", n.Case)
		}
		got, err := VerifyStreamName(key, msg)
		switch {
		case n.Accept == nil && err == nil:
			t.Errorf("%s: accepted %q, independent check refused", n.Case, got)
		case n.Accept != nil && (err != nil || got != *n.Accept):
			t.Errorf("%s: got %q, %v; independent check gave %q", n.Case, got, err, *n.Accept)
		}
	}
}

// signPayload signs arbitrary JSON text the way MessageVerifier would, to
// build messages turbo-rails never produces.
func signPayload(key []byte, payload string) string {
	data := base64.StdEncoding.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(data))
	return data + "--" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifyStreamNameEdgeCases(t *testing.T) {
	key := TurboKey("test-secret-key-base-0123456789abcdef", false)
	other := TurboKey("another-secret", false)
	good := SignStreamName(key, "lobby")
	tests := []struct {
		name   string
		keys   [][]byte
		signed string
		want   string // stream, when reason is ""
		reason string
	}{
		{"valid", [][]byte{key}, good, "lobby", ""},
		{"second key verifies", [][]byte{other, key}, good, "lobby", ""},
		{"wrong key", [][]byte{other}, good, "", "bad_signed_stream_name"},
		{"no keys", nil, good, "", "no_turbo_key"},
		{"only empty keys", [][]byte{nil, {}}, SignStreamName(nil, "x"), "", "no_turbo_key"},
		{"empty key skipped", [][]byte{nil, other}, SignStreamName(nil, "x"), "", "bad_signed_stream_name"},
		{"metadata envelope", [][]byte{key}, signPayload(key, `{"_rails":{"data":"lobby","pur":null,"exp":null}}`), "", "malformed_signed_stream_name"},
		{"object", [][]byte{key}, signPayload(key, `{"stream":"lobby"}`), "", "malformed_signed_stream_name"},
		{"number", [][]byte{key}, signPayload(key, `42`), "", "malformed_signed_stream_name"},
		{"null", [][]byte{key}, signPayload(key, `null`), "", "malformed_signed_stream_name"},
		{"array", [][]byte{key}, signPayload(key, `["lobby"]`), "", "malformed_signed_stream_name"},
		{"empty string", [][]byte{key}, signPayload(key, `""`), "", "malformed_signed_stream_name"},
		{"trailing data", [][]byte{key}, signPayload(key, `"lobby" "x"`), "", "malformed_signed_stream_name"},
		{"not JSON", [][]byte{key}, signPayload(key, `lobby`), "", "malformed_signed_stream_name"},
		{"JSON with spaces", [][]byte{key}, signPayload(key, ` "lobby" `), "lobby", ""},
		{"signed non-base64", [][]byte{key}, "!!!!--" + hex.EncodeToString(digest(key, "!!!!")), "", "malformed_signed_stream_name"},
		{"signed base64 with newline", [][]byte{key}, "ImxvYmJ5\nIg==--" + hex.EncodeToString(digest(key, "ImxvYmJ5\nIg==")), "", "malformed_signed_stream_name"},
		{"non-ASCII", [][]byte{key}, "é" + good, "", "malformed_signed_stream_name"},
		{"digest only", [][]byte{key}, good[len(good)-66:], "", "malformed_signed_stream_name"},
		{"digest not hex", [][]byte{key}, good[:len(good)-1] + "g", "", "malformed_signed_stream_name"},
		{"short digest", [][]byte{key}, good[:len(good)-2], "", "malformed_signed_stream_name"},
		{"extra byte", [][]byte{key}, good + "0", "", "malformed_signed_stream_name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyStreamName(tc.keys, tc.signed)
			if r := Reason(err); r != tc.reason {
				t.Fatalf("Reason = %q (err %v), want %q", r, err, tc.reason)
			}
			if got != tc.want {
				t.Errorf("stream = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBadSignedNameIsBadSignature keeps the promise in ErrBadSignedName's doc.
func TestBadSignedNameIsBadSignature(t *testing.T) {
	_, err := VerifyStreamName([][]byte{[]byte("k")}, SignStreamName([]byte("other"), "x"))
	if !errors.Is(err, ErrBadSignedName) || !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v; want ErrBadSignedName wrapping ErrBadSignature", err)
	}
	_, err = VerifyStreamName([][]byte{[]byte("k")}, "garbage")
	if !errors.Is(err, ErrMalformedSignedName) || errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v; want ErrMalformedSignedName only", err)
	}
}

// TestRubyJSONString pins the escaping that differs from encoding/json.
func TestRubyJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{`café <b>&"q"</b>`, `"café <b>&\"q\"</b>"`},
		{"a/b\\c", `"a/b\\c"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"\b\f\n\r\t\x00\x1f\x7f", `"\b\f\n\r\t\u0000\u001f` + "\x7f\""},
	}
	for _, tc := range tests {
		if got := string(rubyJSONString(tc.in)); got != tc.want {
			t.Errorf("rubyJSONString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		// What we sign must decode back to the same string.
		key := []byte("k")
		if got, err := VerifyStreamName([][]byte{key}, SignStreamName(key, tc.in)); err != nil || got != tc.in {
			t.Errorf("round trip of %q = %q, %v", tc.in, got, err)
		}
	}
}
