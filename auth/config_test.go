package auth

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewNoKeys(t *testing.T) {
	_, err := New(Config{})
	if !errors.Is(err, ErrNoKeys) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(Config{}) = %v; want ErrNoKeys", err)
	}
	for _, want := range []string{"CABLECAR_JWT_SECRET", "CABLECAR_JWT_PUBLIC_KEY_FILE", "CABLECAR_ALLOW_ANONYMOUS=true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not mention %s", err, want)
		}
	}
	if _, err := New(Config{AllowAnonymous: true}); err != nil {
		t.Errorf("anonymous-only config refused: %v", err)
	}
}

func TestNewRouteErrors(t *testing.T) {
	tests := []struct{ routes, want string }{
		{"Foo", `CABLECAR_ROUTES: rule 1 "Foo": missing "="`},
		{"A=x;Foo", `CABLECAR_ROUTES: rule 2 "Foo": missing "="`},
		{"A=x\n\n;  ;Foo", `CABLECAR_ROUTES: rule 2 "Foo"`},
		{"DocumentChannel=", `template 1: empty template`},
		{"DocumentChannel=a,,b", `template 2: empty template`},
		{"DocumentChannel=a, ", `template 2: empty template`},
		{"DocumentChannel={channel", `unbalanced "{"`},
		{"DocumentChannel=channel}", `unbalanced "}"`},
		{"DocumentChannel={a{b}}", `unbalanced "{"`},
		{"DocumentChannel={foo}", `unknown placeholder {foo}`},
		{"DocumentChannel={}", `unknown placeholder {}`},
		{"DocumentChannel={Channel}", `unknown placeholder {Channel}`},
		{"DocumentChannel={params.}", `invalid name ""`},
		{"DocumentChannel={params.a.b}", `invalid name "a.b"`},
		{"DocumentChannel={claims.a b}", `invalid name "a b"`},
		{"DocumentChannel={gid:Document}", `want {gid:Model:params.NAME}`},
		{"DocumentChannel={gid:document:params.id}", `invalid model "document"`},
		{"DocumentChannel={gid::params.id}", `invalid model ""`},
		{"DocumentChannel={gid:Chat:::params.id}", `invalid model "Chat::"`},
		{"DocumentChannel={gid:Document:foo.id}", `unknown placeholder {foo.id}`},
		{"documentChannel=x", `invalid channel class "documentChannel"`},
		{"=x", `invalid channel class ""`},
		{"public:=x", `invalid channel class ""`},
		{"Chat:RoomChannel=x", `invalid channel class "Chat:RoomChannel"`},
		{"A=x;A=y", `CABLECAR_ROUTES: rule 2 "A=y": duplicate route for channel "A" (first routed at CABLECAR_ROUTES: rule 1 "A=x")`},
		{"A=x;public:A=y", `duplicate route for channel "A"`},
		{"DocumentChannel={gid:Document:params.id}", `CABLECAR_GID_APP: must be set because CABLECAR_ROUTES: rule 1 "DocumentChannel={gid:Document:params.id}" uses a {gid:…} placeholder`},
	}
	for _, tc := range tests {
		t.Run(tc.routes, func(t *testing.T) {
			_, err := New(Config{AllowAnonymous: true, Routes: tc.routes})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(Routes=%q) = %v; want an error containing %q", tc.routes, err, tc.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error does not match ErrInvalidConfig")
			}
		})
	}
}

func TestNewRoutesAccepted(t *testing.T) {
	routes := "public: Chat::RoomChannel = {channel}:{params.room} ; # a comment\nA=x#1,{params.a-b_c}{channel}"
	a, err := New(Config{AllowAnonymous: true, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	r := a.routes["Chat::RoomChannel"]
	if r == nil || !r.public || !r.usesParams || r.channel != "chat:room" {
		t.Fatalf("route = %+v", r)
	}
	got, err := a.Authorize(nil, "A", map[string]any{"a-b_c": "v"})
	if err == nil || Reason(err) != "stream_forbidden" {
		t.Errorf("A: %v, %v", got, err)
	}
}

func TestNewRoutesFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "routes.conf")
	writeFile(t, good, "# routes\n\nDocumentChannel={channel}:{params.id}\n  # indented comment\npublic:LobbyChannel=lobby\n")
	a, err := New(Config{AllowAnonymous: true, RoutesFile: good, Routes: "StatusChannel=status"})
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []string{"DocumentChannel", "LobbyChannel", "StatusChannel"} {
		if a.routes[class] == nil {
			t.Errorf("route for %s missing", class)
		}
	}

	bad := filepath.Join(dir, "bad.conf")
	writeFile(t, bad, "# header\nStatusChannel=status\n\nFoo\n")
	_, err = New(Config{AllowAnonymous: true, RoutesFile: bad, Routes: "StatusChannel=other"})
	for _, want := range []string{
		`CABLECAR_ROUTES_FILE: "` + bad + `" line 4 "Foo": missing "="`,
		`CABLECAR_ROUTES_FILE: "` + bad + `" line 2 "StatusChannel=status": duplicate route for channel "StatusChannel" (first routed at CABLECAR_ROUTES: rule 1`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}

	_, err = New(Config{AllowAnonymous: true, RoutesFile: filepath.Join(dir, "missing.conf")})
	if err == nil || !strings.Contains(err.Error(), "CABLECAR_ROUTES_FILE") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing routes file: %v", err)
	}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNewKeyErrors(t *testing.T) {
	k := loadTestKeys()
	dir := t.TempDir()
	small := must(rsa.GenerateKey(rand.Reader, 1024))
	p224 := must(ecdsa.GenerateKey(elliptic.P224(), rand.Reader))
	x25519 := must(ecdh.X25519().GenerateKey(rand.Reader))
	privDER := must(x509.MarshalPKCS8PrivateKey(k.rsa1))
	files := map[string][]*pem.Block{
		"private.pem": {{Type: "PRIVATE KEY", Bytes: privDER}},
		"rsa1024.pem": {pkixBlock(t, &small.PublicKey)},
		"p224.pem":    {pkixBlock(t, &p224.PublicKey)},
		"x25519.pem":  {pkixBlock(t, x25519.PublicKey())},
		"other.pem":   {{Type: "SOMETHING", Bytes: []byte{1}}},
		"broken.pem":  {{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}},
		"second.pem":  {pkixBlock(t, &k.rsa1.PublicKey), {Type: "RSA PRIVATE KEY", Bytes: []byte{1}}},
	}
	for name, blocks := range files {
		var data []byte
		for _, b := range blocks {
			data = append(data, pem.EncodeToMemory(b)...)
		}
		writeFile(t, filepath.Join(dir, name), string(data))
	}
	writeFile(t, filepath.Join(dir, "empty.pem"), "no pem here\n")
	tests := []struct{ file, want string }{
		{"private.pem", `"PRIVATE KEY" block: give the public key only`},
		{"rsa1024.pem", "RSA key has 1024 bits"},
		{"p224.pem", "ECDSA curve P-224 is not used by JWT"},
		{"x25519.pem", "unsupported key type"},
		{"other.pem", `unsupported PEM block type "SOMETHING"`},
		{"broken.pem", "PEM block 1"},
		{"second.pem", `PEM block 2: "RSA PRIVATE KEY" block`},
		{"empty.pem", "no PEM block found"},
		{"missing.pem", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			_, err := New(Config{JWTPublicKeyFiles: []string{path}})
			want := `CABLECAR_JWT_PUBLIC_KEY_FILE: "` + path + `": `
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q and %q", err, want, tc.want)
			}
			if !errors.Is(err, ErrInvalidKey) || errors.Is(err, ErrNoKeys) {
				t.Errorf("want ErrInvalidKey and not ErrNoKeys: %v", err)
			}
		})
	}
}

// TestNewReportsEverything: every problem at once, one per line, each naming
// its setting.
func TestNewReportsEverything(t *testing.T) {
	_, err := New(Config{
		JWTSecret:        "short",
		JWTCookie:        "bad cookie",
		StreamsClaim:     "sub",
		GIDApp:           "my app",
		TurboVerifierKey: "hex:zz",
		Routes:           "Foo;Bar={nope}",
	})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	want := []string{
		"CABLECAR_JWT_SECRET: too short (5 bytes)",
		`CABLECAR_JWT_COOKIE: "bad cookie" is not a valid cookie name`,
		`CABLECAR_STREAMS_CLAIM: "sub" is a registered JWT claim`,
		`CABLECAR_GID_APP: "my app" may only hold`,
		`CABLECAR_TURBO_VERIFIER_KEY: value after "hex:" is not non-empty hex`,
		`CABLECAR_ROUTES: rule 1 "Foo": missing "="`,
		`CABLECAR_ROUTES: rule 2 "Bar={nope}": template 1: "{nope}": unknown placeholder {nope}`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "short\"") {
		t.Error("the secret's value leaked into the error")
	}
}
