package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/, so a plain go test
// runs every seed; go test -fuzz=FuzzName explores further.

// fuzzTurboBase is the secret_key_base of the Turbo vectors, so the seeds
// include names that really verify.
const fuzzTurboBase = "test-secret-key-base-0123456789abcdef"

func FuzzVerifyStreamName(f *testing.F) {
	keys := [][]byte{TurboKey(fuzzTurboBase, false), TurboKey(fuzzTurboBase, true)}
	f.Add(SignStreamName(keys[0], "lobby"))
	f.Fuzz(func(t *testing.T, signed string) {
		name, err := VerifyStreamName(keys, signed)
		if err != nil {
			if !errors.Is(err, ErrBadSignedName) && !errors.Is(err, ErrMalformedSignedName) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if name != "" {
				t.Fatalf("name %q returned with error %v", name, err)
			}
			return
		}
		if name == "" {
			t.Fatal("verified an empty name")
		}
		// Whatever verifies must survive signing it again ourselves.
		again, err := VerifyStreamName(keys, SignStreamName(keys[0], name))
		if err != nil || again != name {
			t.Fatalf("re-signed %q verified as %q, %v", name, again, err)
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	f.Add("DocumentChannel={channel}:{gid:Document:params.id}")
	id := &Identity{Subject: "42", Claims: map[string]any{"sub": "42", "streams": []any{"*"}, "org": json.Number("7")}}
	params := map[string]any{"channel": "X", "id": json.Number("123"), "room": "lobby", "flag": true, "f": json.Number("1.5")}
	f.Fuzz(func(t *testing.T, routes string) {
		rules := splitRoutes(routes)
		parsed, probs := buildRoutes(rules)
		for _, p := range probs {
			if !errors.Is(p, ErrInvalidRoute) || !strings.HasPrefix(p.Error(), "CABLECAR_ROUTES: rule ") {
				t.Fatalf("bad problem: %v", p)
			}
		}
		if len(parsed)+len(probs) != len(rules) {
			t.Fatalf("%d rules, %d routes, %d problems", len(rules), len(parsed), len(probs))
		}
		for _, r := range parsed {
			streams, err := r.streams(id, params, "myapp")
			if err != nil {
				if !errors.Is(err, ErrMissingParam) && !errors.Is(err, ErrUnrenderable) {
					t.Fatalf("render %s: %v", r.where, err)
				}
				continue
			}
			if len(streams) == 0 || len(streams) > len(r.templates) {
				t.Fatalf("%s rendered %q", r.where, streams)
			}
		}
		// New must agree and never panic.
		if _, err := New(Config{AllowAnonymous: true, GIDApp: "myapp", Routes: routes}); (err == nil) != (len(probs) == 0) {
			t.Fatalf("New error %v, parse problems %v", err, probs)
		}
	})
}

// fuzzJWTSecret signs the valid seed tokens in testdata/fuzz/FuzzAuthenticate.
const fuzzJWTSecret = "fuzz-secret-0123456789abcdef0123456789"

func FuzzAuthenticate(f *testing.F) {
	a, err := New(Config{JWTSecret: fuzzJWTSecret, AllowAnonymous: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("e30.e30.e30")
	f.Fuzz(func(t *testing.T, token string) {
		r := httptest.NewRequest(http.MethodGet, "/cable", nil)
		r.Header["Authorization"] = []string{"Bearer " + token}
		id, err := a.Authenticate(r)
		if err != nil {
			switch Reason(err) {
			case "other", "", "no_token", "unknown_channel", "missing_param":
				t.Fatalf("unexpected reason %q: %v", Reason(err), err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error contains the token: %v", err)
			}
			return
		}
		if id.Anonymous != (strings.TrimSpace(token) == "") {
			t.Fatalf("identity %+v for token %q", id, token)
		}
		if !id.Anonymous && id.Claims == nil {
			t.Fatal("verified identity without claims")
		}
	})
}

// TestFuzzSeedsReachSuccess makes sure the corpora exercise the success
// paths, not only rejections: a corpus of failures would fuzz little.
func TestFuzzSeedsReachSuccess(t *testing.T) {
	a := newAuth(t, Config{JWTSecret: fuzzJWTSecret})
	for _, name := range []string{"valid_hs256", "valid_hs512_int_sub"} {
		token := readSeed(t, "FuzzAuthenticate", name)
		if _, err := a.Authenticate(bearer(token)); err != nil {
			t.Errorf("seed %s: %v", name, err)
		}
	}
	keys := [][]byte{TurboKey(fuzzTurboBase, false)}
	if _, err := VerifyStreamName(keys, readSeed(t, "FuzzVerifyStreamName", "sha256_0")); err != nil {
		t.Errorf("seed sha256_0: %v", err)
	}
	if _, probs := buildRoutes(splitRoutes(readSeed(t, "FuzzParseRoutes", "public_multi"))); len(probs) > 0 {
		t.Errorf("seed public_multi: %v", probs)
	}
}

// readSeed returns the string in a one-value corpus file.
func readSeed(t *testing.T, fuzz, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", fuzz, name))
	if err != nil {
		t.Fatal(err)
	}
	_, quoted, _ := strings.Cut(strings.TrimSpace(string(data)), "string(")
	s, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
	if err != nil {
		t.Fatalf("seed %s/%s: %v", fuzz, name, err)
	}
	return s
}
