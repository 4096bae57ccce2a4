package doctor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/auth"
)

// writePublicKey writes an Ed25519 public key PEM and returns its path.
func writePublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckAuth(t *testing.T) {
	keyFile := writePublicKey(t)
	type want struct {
		check  string
		status Status
		text   string // in the message
	}
	for _, tc := range []struct {
		name string
		cfg  auth.Config
		want []want
		none []string // checks that must not appear
	}{
		{
			name: "good secret and routes",
			cfg:  goodAuth(),
			want: []want{
				{nameKeys, OK, "CABLECAR_JWT_SECRET"},
				{nameToken, OK, "a sample HS256 token verifies"},
				{nameRoutes, OK, "CABLECAR_ROUTES parse"},
			},
		},
		{
			name: "issuer, audience and a custom parameter",
			cfg: func() auth.Config {
				c := goodAuth()
				c.JWTIssuer, c.JWTAudience, c.JWTParam = "https://app.example", "cable", "jwt"
				return c
			}(),
			want: []want{{nameToken, OK, `query parameter "jwt", with the configured iss/aud`}},
		},
		{
			name: "no key and not anonymous",
			cfg:  auth.Config{Routes: "ChatChannel=chat"},
			want: []want{
				{nameKeys, Fail, "no JWT key and CABLECAR_ALLOW_ANONYMOUS is not true"},
				{nameRoutes, OK, "CABLECAR_ROUTES parse"},
			},
		},
		{
			name: "short secret",
			cfg:  auth.Config{JWTSecret: "short", Routes: "ChatChannel=chat"},
			want: []want{{nameKeys, Fail, "CABLECAR_JWT_SECRET: too short"}, {nameRoutes, OK, "CABLECAR_ROUTES parse"}},
			none: []string{nameToken},
		},
		{
			name: "bad route",
			cfg:  auth.Config{JWTSecret: testSecret, Routes: "DocumentChannel"},
			want: []want{{nameRoutes, Fail, "CABLECAR_ROUTES"}, {nameKeys, OK, "CABLECAR_JWT_SECRET"}, {nameToken, OK, "verifies"}},
		},
		{
			name: "gid route without CABLECAR_GID_APP",
			cfg:  auth.Config{JWTSecret: testSecret, Routes: "DocumentChannel={channel}:{gid:Document:params.id}"},
			want: []want{{nameRoutes, Fail, "CABLECAR_GID_APP"}},
		},
		{
			name: "public key only",
			cfg:  auth.Config{JWTPublicKeyFiles: []string{keyFile}, TurboSecretKeyBase: "base"},
			want: []want{
				{nameKeys, OK, "1 public key file"},
				{nameToken, Skip, "no private key"},
				{nameRoutes, OK, "only Turbo::StreamsChannel is routed; Turbo signed stream names verify"},
			},
		},
		{
			name: "bad Turbo key",
			cfg:  auth.Config{JWTSecret: testSecret, TurboVerifierKey: "hex:zz"},
			want: []want{{nameRoutes, Fail, "CABLECAR_TURBO_VERIFIER_KEY"}, {nameToken, OK, "verifies"}},
		},
		{
			name: "anonymous without routes or turbo",
			cfg:  auth.Config{AllowAnonymous: true},
			want: []want{
				{nameKeys, OK, "anonymous connections only"},
				{nameRoutes, Warn, "every subscription is rejected"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{}
			r.Add(checkAuth(tc.cfg)...)
			var b strings.Builder
			_ = r.WriteText(&b)
			for _, w := range tc.want {
				found := false
				for _, res := range r.Find(w.check) {
					if res.Status == w.status && strings.Contains(res.Message, w.text) {
						found = true
						if res.Status >= Warn && res.Fix == "" {
							t.Errorf("%s %s has no fix", w.status, w.check)
						}
					}
				}
				if !found {
					t.Errorf("want %s %s containing %q in:\n%s", w.status, w.check, w.text, b.String())
				}
			}
			for _, check := range tc.none {
				if got := r.Find(check); len(got) > 0 {
					t.Errorf("unexpected %s: %+v", check, got)
				}
			}
			if len(r.Find(nameRoutes)) != 1 {
				t.Errorf("want exactly one routes line:\n%s", b.String())
			}
			if strings.Contains(b.String(), testSecret) || strings.Contains(b.String(), "eyJ") {
				t.Errorf("report shows a secret or a token:\n%s", b.String())
			}
		})
	}
}

func TestCheckSettings(t *testing.T) {
	if got := checkSettings(nil); len(got) != 1 || got[0].Status != OK {
		t.Errorf("no error: %+v", got)
	}
	err := errors.Join(errors.New(`CABLECAR_PING_INTERVAL: invalid duration "soon"`), errors.New(`CABLECAR_JWT_REQUIRE_EXP: invalid syntax`))
	got := checkSettings(err)
	if len(got) != 2 || got[0].Status != Fail || got[1].Message != "CABLECAR_JWT_REQUIRE_EXP: invalid syntax" || got[0].Fix == "" {
		t.Errorf("two errors: %+v", got)
	}
	// Run goes on with what did parse.
	r := Run(context.Background(), Config{LoadErr: err, Auth: goodAuth()})
	if !r.Failed() || only(t, r, nameToken).Status != OK {
		t.Errorf("Run with a load error: %+v", r.Results)
	}
}
