package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testSecret is long enough for New's 32-byte minimum.
const testSecret = "test-secret-0123456789abcdef0123456789"

// testKeys are generated once per test binary: RSA key generation is slow.
type testKeys struct {
	rsa1, rsa2, rsa3 *rsa.PrivateKey
	ec256, ec256b    *ecdsa.PrivateKey
	ec384            *ecdsa.PrivateKey
	ed1, ed2         ed25519.PrivateKey
}

var loadTestKeys = sync.OnceValue(func() *testKeys {
	k := &testKeys{}
	for _, p := range []**rsa.PrivateKey{&k.rsa1, &k.rsa2, &k.rsa3} {
		*p = must(rsa.GenerateKey(rand.Reader, 2048))
	}
	k.ec256 = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	k.ec256b = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	k.ec384 = must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	_, k.ed1 = must2(ed25519.GenerateKey(rand.Reader))
	_, k.ed2 = must2(ed25519.GenerateKey(rand.Reader))
	return k
})

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

func pkixBlock(t testing.TB, pub crypto.PublicKey) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PUBLIC KEY", Bytes: der}
}

func certBlock(t testing.TB, priv crypto.Signer) *pem.Block {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cablecar test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "CERTIFICATE", Bytes: der}
}

// writePEM writes blocks to a new file and returns its path.
func writePEM(t testing.TB, blocks ...*pem.Block) string {
	t.Helper()
	var data []byte
	for _, b := range blocks {
		data = append(data, pem.EncodeToMemory(b)...)
	}
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newAuth(t testing.TB, cfg Config) *Auth {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// claimsWith returns valid claims for "user-1" with the given changes; a nil
// value deletes the claim.
func claimsWith(changes map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "user-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/cable", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// jwtConfigs builds the configurations the JWT table refers to by name.
func jwtConfigs(t *testing.T) (map[string]Config, string) {
	k := loadTestKeys()
	rsaFile := writePEM(t,
		pkixBlock(t, &k.rsa1.PublicKey),
		&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa2.PublicKey)},
	)
	otherFile := writePEM(t, certBlock(t, k.ec256), pkixBlock(t, k.ed1.Public()))
	pub := []string{rsaFile, " " + otherFile + " "} // spaces as a comma list may leave them
	noExp := false
	return map[string]Config{
		"secret":     {JWTSecret: testSecret},
		"pub":        {JWTPublicKeyFiles: pub},
		"secret+pub": {JWTSecret: testSecret, JWTPublicKeyFiles: pub},
		"noexp":      {JWTSecret: testSecret, JWTRequireExp: &noExp},
		"issaud":     {JWTSecret: testSecret, JWTIssuer: "https://app.example", JWTAudience: "cablecar"},
	}, rsaFile
}

func TestAuthenticateJWT(t *testing.T) {
	k := loadTestKeys()
	configs, rsaFile := jwtConfigs(t)
	pemBytes, err := os.ReadFile(rsaFile)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name   string
		cfg    string
		token  func() string
		reason string // "" = accepted
	}{
		{"HS256", "secret", func() string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(nil)) }, ""},
		{"HS384", "secret", func() string { return sign(t, jwt.SigningMethodHS384, []byte(testSecret), claimsWith(nil)) }, ""},
		{"HS512", "secret", func() string { return sign(t, jwt.SigningMethodHS512, []byte(testSecret), claimsWith(nil)) }, ""},
		{"HS256 wrong secret", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), claimsWith(nil))
		}, "bad_signature"},
		{"RS256 first key", "pub", func() string { return sign(t, jwt.SigningMethodRS256, k.rsa1, claimsWith(nil)) }, ""},
		{"RS512 second key (rotation)", "pub", func() string { return sign(t, jwt.SigningMethodRS512, k.rsa2, claimsWith(nil)) }, ""},
		{"PS256", "pub", func() string { return sign(t, jwt.SigningMethodPS256, k.rsa1, claimsWith(nil)) }, ""},
		{"RS256 unknown key", "pub", func() string { return sign(t, jwt.SigningMethodRS256, k.rsa3, claimsWith(nil)) }, "bad_signature"},
		{"ES256 from certificate", "pub", func() string { return sign(t, jwt.SigningMethodES256, k.ec256, claimsWith(nil)) }, ""},
		{"ES256 unknown key", "pub", func() string { return sign(t, jwt.SigningMethodES256, k.ec256b, claimsWith(nil)) }, "bad_signature"},
		{"ES384 without P-384 key", "pub", func() string { return sign(t, jwt.SigningMethodES384, k.ec384, claimsWith(nil)) }, "bad_algorithm"},
		{"EdDSA", "pub", func() string { return sign(t, jwt.SigningMethodEdDSA, k.ed1, claimsWith(nil)) }, ""},
		{"EdDSA unknown key", "pub", func() string { return sign(t, jwt.SigningMethodEdDSA, k.ed2, claimsWith(nil)) }, "bad_signature"},
		{"HS256 with only public keys", "pub", func() string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(nil)) }, "bad_algorithm"},
		{"RS256 with only a secret", "secret", func() string { return sign(t, jwt.SigningMethodRS256, k.rsa1, claimsWith(nil)) }, "bad_algorithm"},
		{"alg none", "secret+pub", func() string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsWith(nil))
		}, "bad_algorithm"},
		{"alg none, public keys only", "pub", func() string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsWith(nil))
		}, "bad_algorithm"},
		{"HS256 keyed with public key PEM, public keys only", "pub", func() string {
			return sign(t, jwt.SigningMethodHS256, pemBytes, claimsWith(nil))
		}, "bad_algorithm"},
		{"HS256 keyed with public key PEM, secret too", "secret+pub", func() string {
			return sign(t, jwt.SigningMethodHS256, pemBytes, claimsWith(nil))
		}, "bad_signature"},
		{"unknown alg", "secret", func() string {
			return `eyJhbGciOiJIUzk5OSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln`
		}, "bad_algorithm"},
		{"expired", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"exp": now.Add(-time.Hour).Unix()}))
		}, "token_expired"},
		{"expired within leeway", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"exp": now.Add(-2 * time.Second).Unix()}))
		}, ""},
		{"nbf in future", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"nbf": now.Add(time.Hour).Unix()}))
		}, "token_not_yet_valid"},
		{"nbf passed", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"nbf": now.Add(-time.Minute).Unix()}))
		}, ""},
		{"missing exp", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"exp": nil}))
		}, "malformed_token"},
		{"missing exp allowed", "noexp", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"exp": nil}))
		}, ""},
		{"expired even when exp optional", "noexp", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"exp": now.Add(-time.Hour).Unix()}))
		}, "token_expired"},
		{"exp not a number", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"exp": "tomorrow"}))
		}, "malformed_token"},
		{"iss and aud right", "issaud", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"iss": "https://app.example", "aud": []string{"other", "cablecar"}}))
		}, ""},
		{"iss wrong", "issaud", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"iss": "https://evil.example", "aud": "cablecar"}))
		}, "bad_issuer"},
		{"iss missing", "issaud", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"aud": "cablecar"}))
		}, "bad_issuer"},
		{"aud wrong", "issaud", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"iss": "https://app.example", "aud": "other"}))
		}, "bad_audience"},
		{"aud missing", "issaud", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"iss": "https://app.example"}))
		}, "bad_audience"},
		{"sub not a string", "secret", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"sub": 1.5}))
		}, "malformed_token"},
		{"garbage", "secret", func() string { return "not-a-jwt" }, "malformed_token"},
		{"bad base64", "secret", func() string { return "eyJhbGciOiJIUzI1NiJ9.e30.!!!" }, "malformed_token"},
		{"missing alg", "secret", func() string { return "e30.e30.c2ln" }, "bad_algorithm"},
		{"empty iss", "issaud", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"iss": "", "aud": "cablecar"}))
		}, "bad_issuer"},
		{"huge", "secret", func() string { return strings.Repeat("a", maxTokenLen+1) }, "malformed_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuth(t, configs[tc.cfg])
			token := tc.token()
			id, err := a.Authenticate(bearer(token))
			if r := Reason(err); r != tc.reason {
				t.Fatalf("Reason = %q (err: %v), want %q", r, err, tc.reason)
			}
			if err != nil {
				if strings.Contains(err.Error(), token) {
					t.Errorf("error message contains the token: %v", err)
				}
				return
			}
			if id.Subject != "user-1" || id.Anonymous {
				t.Errorf("identity = %+v", id)
			}
		})
	}
}

func TestAuthenticateClaims(t *testing.T) {
	a := newAuth(t, Config{JWTSecret: testSecret})
	tests := []struct {
		name    string
		sub     any
		wantSub string
		wantStr string
	}{
		{"string sub", "user-1", "user-1", "user-1"},
		{"integer sub", 42, "42", "42"},
		{"no sub", nil, "", "(no sub)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := sign(t, jwt.SigningMethodHS256, []byte(testSecret),
				claimsWith(map[string]any{"sub": tc.sub, "streams": []string{"a:*"}, "n": 7}))
			id, err := a.Authenticate(bearer(token))
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != tc.wantSub || id.String() != tc.wantStr {
				t.Errorf("Subject %q String %q, want %q %q", id.Subject, id.String(), tc.wantSub, tc.wantStr)
			}
			for _, name := range []string{"exp", "iat", "n"} {
				if _, ok := id.Claims[name].(json.Number); !ok {
					t.Errorf("claim %s is %T, want json.Number", name, id.Claims[name])
				}
			}
			if _, ok := id.Claims["streams"].([]any); !ok {
				t.Errorf("streams claim is %T", id.Claims["streams"])
			}
		})
	}
}

// TestTokenSources: query beats header beats cookie, and the cookie counts
// only when JWTCookie is set.
func TestTokenSources(t *testing.T) {
	tok := func(sub string) string {
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsWith(map[string]any{"sub": sub}))
	}
	withCookie := newAuth(t, Config{JWTSecret: testSecret, JWTCookie: "cable_jwt"})
	noCookie := newAuth(t, Config{JWTSecret: testSecret})
	customParam := newAuth(t, Config{JWTSecret: testSecret, JWTParam: "jwt"})
	tests := []struct {
		name   string
		auth   *Auth
		query  string
		header string
		cookie string
		want   string // subject, or "" for an error
		reason string
	}{
		{"query beats header and cookie", withCookie, "token=" + tok("q"), "Bearer " + tok("h"), tok("c"), "q", ""},
		{"header beats cookie", withCookie, "", "Bearer " + tok("h"), tok("c"), "h", ""},
		{"lower-case bearer", withCookie, "", "bearer " + tok("h"), "", "h", ""},
		{"cookie last", withCookie, "", "", tok("c"), "c", ""},
		{"empty query falls through", withCookie, "token=", "Bearer " + tok("h"), "", "h", ""},
		{"basic auth ignored", withCookie, "", "Basic dXNlcjpwYXNz", tok("c"), "c", ""},
		{"cookie ignored when unset", noCookie, "", "", tok("c"), "", "no_token"},
		{"custom param", customParam, "jwt=" + tok("j"), "", "", "j", ""},
		{"default param unused when custom", customParam, "token=" + tok("j"), "", "", "", "no_token"},
		{"repeated query param", withCookie, "token=" + tok("a") + "&token=" + tok("b"), "", "", "", "malformed_token"},
		{"bad query token beats good header", withCookie, "token=bad", "Bearer " + tok("h"), "", "", "malformed_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/cable?"+tc.query, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "cable_jwt", Value: tc.cookie})
			}
			id, err := tc.auth.Authenticate(r)
			if got := Reason(err); got != tc.reason {
				t.Fatalf("Reason = %q (err %v), want %q", got, err, tc.reason)
			}
			if err == nil && id.Subject != tc.want {
				t.Errorf("subject = %q, want %q", id.Subject, tc.want)
			}
		})
	}
}

func TestAnonymous(t *testing.T) {
	anon := newAuth(t, Config{AllowAnonymous: true})
	anonWithKey := newAuth(t, Config{AllowAnonymous: true, JWTSecret: testSecret})
	strict := newAuth(t, Config{JWTSecret: testSecret})
	noToken := httptest.NewRequest(http.MethodGet, "/cable", nil)

	id, err := anon.Authenticate(noToken)
	if err != nil || !id.Anonymous || id.Claims != nil || id.String() != "anonymous" {
		t.Fatalf("anonymous: %+v, %v", id, err)
	}
	if _, err := strict.Authenticate(noToken); Reason(err) != "no_token" {
		t.Fatalf("strict without token: %v", err)
	}
	bad := sign(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), claimsWith(nil))
	if _, err := anonWithKey.Authenticate(bearer(bad)); Reason(err) != "bad_signature" {
		t.Errorf("bad token with anonymous allowed: %v", err)
	}
	// Without any key, a presented token cannot be verified: refuse it
	// rather than silently treating the client as anonymous.
	if _, err := anon.Authenticate(bearer(bad)); Reason(err) != "bad_algorithm" {
		t.Errorf("token with no key configured: %v", err)
	}
}

func TestMint(t *testing.T) {
	a := newAuth(t, Config{JWTSecret: testSecret, JWTIssuer: "iss", JWTAudience: "aud", StreamsClaim: "grants"})
	token, err := a.Mint("user-9", []string{"document:*"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(bearer(token))
	if err != nil {
		t.Fatalf("minted token refused: %v", err)
	}
	if id.Subject != "user-9" || id.Claims["iss"] != "iss" || id.Claims["aud"] != "aud" {
		t.Errorf("claims = %v", id.Claims)
	}
	if g, _ := id.Claims["grants"].([]any); len(g) != 1 || g[0] != "document:*" {
		t.Errorf("streams claim = %v", id.Claims["grants"])
	}
	exp, _ := id.Claims["exp"].(json.Number).Int64()
	if d := time.Until(time.Unix(exp, 0)); d <= 0 || d > time.Minute {
		t.Errorf("exp %v from now", d)
	}

	noStreams, err := a.Mint("u", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := a.Authenticate(bearer(noStreams)); id == nil || id.Claims["grants"] != nil {
		t.Errorf("nil streams should omit the claim: %v", id)
	}
	if _, err := a.Mint("u", nil, 0); err == nil {
		t.Error("zero ttl accepted")
	}
	pubOnly := newAuth(t, Config{AllowAnonymous: true})
	if _, err := pubOnly.Mint("u", nil, time.Minute); err != ErrNoSecret {
		t.Errorf("Mint without secret: %v", err)
	}
}

func TestRedactQuery(t *testing.T) {
	a := newAuth(t, Config{JWTSecret: testSecret})
	custom := newAuth(t, Config{JWTSecret: testSecret, JWTParam: "jwt"})
	tests := []struct {
		auth      *Auth
		raw, want string
	}{
		{a, "", ""},
		{a, "token=abc.def.ghi", "token=REDACTED"},
		{a, "a=1&token=abc&b=2", "a=1&token=REDACTED&b=2"},
		{a, "token=a&token=b", "token=REDACTED&token=REDACTED"},
		{a, "a=1;token=abc", "a=1;token=REDACTED"},
		{a, "%74oken=abc", "%74oken=REDACTED"},
		{a, "tokens=abc&xtoken=1", "tokens=abc&xtoken=1"},
		{a, "token", "token"},
		{a, "token=", "token=REDACTED"},
		{custom, "token=keep&jwt=abc", "token=keep&jwt=REDACTED"},
	}
	for _, tc := range tests {
		if got := tc.auth.RedactQuery(tc.raw); got != tc.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestReason(t *testing.T) {
	if Reason(nil) != "" {
		t.Error("Reason(nil) != \"\"")
	}
	if Reason(os.ErrNotExist) != "other" {
		t.Error("unrelated error should be other")
	}
	if Reason(ErrBadSignedName) != "bad_signed_stream_name" || Reason(ErrBadSignature) != "bad_signature" {
		t.Error("signed name and JWT signature reasons must differ")
	}
}
