package doctor

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cablecar/cablecar/auth"
)

// sampleSubject is the sub of the token doctor mints to test the keys.
const sampleSubject = "cablecar-doctor"

// checkAuth builds auth the way `cablecar serve` does and reports the keys,
// a sample token and the routes.
func checkAuth(cfg auth.Config) []Result {
	a, err := auth.New(cfg)
	if err != nil {
		out := authProblems(err)
		// Are the keys, and the routes, fine apart from the other
		// problems? Check each part alone; its own problems are already
		// among those reported.
		keys := cfg
		keys.Routes, keys.RoutesFile, keys.GIDApp, keys.TurboSecretKeyBase, keys.TurboVerifierKey = "", "", "", "", ""
		if a, err := auth.New(keys); err == nil {
			out = append(out, keysResult(cfg), sampleToken(a, cfg))
		}
		alone := auth.Config{
			AllowAnonymous:     true,
			GIDApp:             cfg.GIDApp,
			Routes:             cfg.Routes,
			RoutesFile:         cfg.RoutesFile,
			TurboSecretKeyBase: cfg.TurboSecretKeyBase,
			TurboVerifierKey:   cfg.TurboVerifierKey,
		}
		if _, err := auth.New(alone); err == nil {
			out = append(out, routesResult(cfg))
		}
		return out
	}
	return []Result{keysResult(cfg), sampleToken(a, cfg), routesResult(cfg)}
}

// authProblems turns auth.New's joined problems into one FAIL each.
func authProblems(err error) []Result {
	problems := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		problems = j.Unwrap()
	}
	var out []Result
	for _, p := range problems {
		res := Result{Status: Fail, Check: nameKeys, Message: p.Error()}
		switch {
		case errors.Is(p, auth.ErrNoKeys):
			res.Message = "no JWT key and CABLECAR_ALLOW_ANONYMOUS is not true: `cablecar serve` refuses to start, since no connection could ever be accepted"
			res.Fix = "set CABLECAR_JWT_SECRET (at least 32 random bytes: openssl rand -hex 32) or CABLECAR_JWT_PUBLIC_KEY_FILE; or CABLECAR_ALLOW_ANONYMOUS=true if every stream is public"
		case errors.Is(p, auth.ErrInvalidRoute):
			res.Check = nameRoutes
			res.Fix = "write each rule as [public:]ChannelClass=template[,template…] with {channel}, {params.NAME}, {claims.NAME} or {gid:Model:params.NAME} (README: Routes)"
		case errors.Is(p, auth.ErrInvalidKey):
			if strings.HasPrefix(p.Error(), "CABLECAR_TURBO_") {
				res.Check = nameRoutes // Turbo keys route Turbo::StreamsChannel
			}
			res.Fix = "fix the key setting named here (README: Settings)"
		case strings.Contains(p.Error(), "CABLECAR_GID_APP"):
			res.Check = nameRoutes
			res.Fix = "set CABLECAR_GID_APP to the app's GlobalID.app (by default the application name, dasherized: my-app)"
		default:
			res.Check = "auth settings"
			res.Fix = "fix the setting named here (README: Settings)"
		}
		out = append(out, res)
	}
	return out
}

// keysResult describes the configured keys; it never shows key material.
func keysResult(cfg auth.Config) Result {
	var have []string
	if cfg.JWTSecret != "" {
		have = append(have, "CABLECAR_JWT_SECRET (HS256/384/512)")
	}
	if n := len(cfg.JWTPublicKeyFiles); n > 0 {
		have = append(have, fmt.Sprintf("%s in CABLECAR_JWT_PUBLIC_KEY_FILE", plural(n, "public key file")))
	}
	if len(have) == 0 {
		return Result{Status: OK, Check: nameKeys,
			Message: "no JWT key: anonymous connections only (CABLECAR_ALLOW_ANONYMOUS=true); routes that read a claim or need the streams claim never match"}
	}
	msg := strings.Join(have, " and ") + " load"
	if cfg.AllowAnonymous {
		msg += "; connections without a token are admitted too (CABLECAR_ALLOW_ANONYMOUS=true)"
	}
	return Result{Status: OK, Check: nameKeys, Message: msg}
}

// sampleToken mints an HS256 token with the secret and verifies it the way a
// connection's is verified, through the token query parameter. The token
// itself is never shown.
func sampleToken(a *auth.Auth, cfg auth.Config) Result {
	if cfg.JWTSecret == "" {
		msg := "anonymous only: there is no key to sign one with"
		if len(cfg.JWTPublicKeyFiles) > 0 {
			msg = "doctor holds no private key to sign an RS/PS/ES/EdDSA token; check one your app minted with a real connection"
		}
		return Result{Status: Skip, Check: nameToken, Message: msg}
	}
	tok, err := a.Mint(sampleSubject, nil, time.Minute)
	if err != nil {
		return Result{Status: Fail, Check: nameToken, Message: "cannot mint a sample token: " + err.Error(),
			Fix: "check CABLECAR_JWT_SECRET"}
	}
	param := cfg.JWTParam
	if param == "" {
		param = auth.DefaultJWTParam
	}
	r, err := http.NewRequest(http.MethodGet, "http://cablecar.invalid/cable?"+url.Values{param: {tok}}.Encode(), nil)
	if err != nil {
		return Result{Status: Fail, Check: nameToken, Message: "cannot build a sample request: " + urlErrReason(err).Error()}
	}
	id, err := a.Authenticate(r)
	if err != nil {
		return Result{Status: Fail, Check: nameToken,
			Message: "a token signed with CABLECAR_JWT_SECRET does not verify: " + err.Error(),
			Fix:     "check CABLECAR_JWT_ISSUER, CABLECAR_JWT_AUDIENCE and CABLECAR_JWT_PARAM against what your app puts in its tokens"}
	}
	if id.Subject != sampleSubject {
		return Result{Status: Fail, Check: nameToken,
			Message: fmt.Sprintf("a sample token verifies but its subject reads %q", id.Subject)}
	}
	msg := fmt.Sprintf("a sample HS256 token verifies (query parameter %q", param)
	if cfg.JWTIssuer != "" || cfg.JWTAudience != "" {
		msg += ", with the configured iss/aud"
	}
	return Result{Status: OK, Check: nameToken, Message: msg + ")"}
}

// routesResult describes the routes once they have parsed.
func routesResult(cfg auth.Config) Result {
	var what []string
	if strings.TrimSpace(cfg.Routes) != "" {
		what = append(what, "CABLECAR_ROUTES")
	}
	if cfg.RoutesFile != "" {
		what = append(what, "CABLECAR_ROUTES_FILE "+cfg.RoutesFile)
	}
	turbo := ""
	switch {
	case cfg.TurboSecretKeyBase != "":
		turbo = "Turbo signed stream names verify with CABLECAR_TURBO_SECRET_KEY_BASE"
	case cfg.TurboVerifierKey != "":
		turbo = "Turbo signed stream names verify with CABLECAR_TURBO_VERIFIER_KEY"
	}
	switch {
	case len(what) == 0 && turbo == "":
		return Result{Status: Warn, Check: nameRoutes,
			Message: "no routes and no Turbo key: every subscription is rejected",
			Fix:     "set CABLECAR_ROUTES, e.g. 'DocumentChannel={channel}:{gid:Document:params.id}', and/or CABLECAR_TURBO_SECRET_KEY_BASE for turbo_stream_from"}
	case len(what) == 0:
		return Result{Status: OK, Check: nameRoutes, Message: "no CABLECAR_ROUTES: only Turbo::StreamsChannel is routed; " + turbo}
	}
	msg := strings.Join(what, " and ") + " parse"
	if turbo != "" {
		msg += "; " + turbo
	}
	return Result{Status: OK, Check: nameRoutes, Message: msg}
}
