// Package status serves the live status page of the admin listener: a page
// that loads the JSON snapshot of GET /api/status once, then applies the
// Server-Sent Events of GET /api/events as they come, and refreshes the
// snapshot every 10 s to correct drift (see docs/admin-api.md).
//
// The page is four embedded files, served by Handler:
//
//	/                   the page (index.html)
//	/status/app.js      its script
//	/status/style.css   its style sheet
//	/status/icon.svg    its icon
//
// The page refers to its assets and to the API by relative URLs
// (status/app.js, api/status, api/events, loglevel), so it works at the
// root of the admin listener and behind a proxy that mounts the listener
// under a path prefix. When the admin listener requires a token, open the
// page as /?admin_token=…: the script passes the token on to every API
// request, and Handler adds it to the page's asset URLs, since a browser
// sends no Authorization header for <script> or <link>.
//
// No inline script or style is used, so the page runs under a strict
// Content-Security-Policy, and the script renders every server string as
// text, never as HTML: stream names, identifiers and previews come from
// clients and publishers.
package status

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"

	"github.com/cablecar/cablecar/staticpage"
)

// Paths of the page's assets, as served by Handler.
const (
	ScriptPath = "/status/app.js"
	StylePath  = "/status/style.css"
	IconPath   = "/status/icon.svg"
)

// TokenParam is the query parameter that carries the admin token. The page
// reads it from its own URL and passes it on.
const TokenParam = "admin_token"

// maxTokenLen caps the token that Handler copies into the page's asset URLs;
// a longer one is left out (the assets are then requested without it).
const maxTokenLen = 512

// ContentSecurityPolicy is sent with every response: only this origin's
// files and connections, no plugins, no <base>, no forms, no framing.
const ContentSecurityPolicy = "default-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed assets
var assets embed.FS

var pageTemplate = template.Must(template.ParseFS(assets, "assets/index.html"))

// Handler serves the status page at "/" and its assets under "/status/".
// Only GET and HEAD are allowed (405 otherwise); any other path is 404.
// Every response carries ContentSecurityPolicy, nosniff, no-referrer and
// no-store headers. The handler does no authentication itself: the admin
// listener checks the token before calling it. It is safe for concurrent
// use.
func Handler() http.Handler {
	// Render once without a token: the usual case needs no per-request work.
	plain := renderPage("")
	files := map[string]*staticpage.File{
		ScriptPath: {ContentType: "text/javascript; charset=utf-8", Body: staticpage.MustRead(assets, "assets/app.js")},
		StylePath:  {ContentType: "text/css; charset=utf-8", Body: staticpage.MustRead(assets, "assets/style.css")},
		IconPath:   {ContentType: "image/svg+xml", Body: staticpage.MustRead(assets, "assets/icon.svg")},
	}
	headers := staticpage.Headers{
		"Content-Security-Policy":      ContentSecurityPolicy,
		"X-Content-Type-Options":       "nosniff",
		"X-Frame-Options":              "DENY",
		"Referrer-Policy":              "no-referrer",
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Resource-Policy": "same-origin",
		// The page's URL and asset URLs may hold the admin token, and the
		// assets change with every build: keep nothing.
		"Cache-Control": "no-store",
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers.Set(w)
		if r.URL.Path != "/" {
			staticpage.Write(w, r, files[r.URL.Path])
			return
		}
		page := &staticpage.File{ContentType: "text/html; charset=utf-8", Body: plain}
		if tok := r.URL.Query().Get(TokenParam); tok != "" && len(tok) <= maxTokenLen {
			page.Body = renderPage(tok)
		}
		staticpage.Write(w, r, page)
	})
}

// renderPage renders index.html; token, when not empty, is added to the
// asset URLs (html/template escapes it for the query part of a URL).
func renderPage(token string) []byte {
	var page bytes.Buffer
	err := pageTemplate.Execute(&page, struct {
		Token, ScriptPath, StylePath, IconPath string
	}{token, ScriptPath[1:], StylePath[1:], IconPath[1:]})
	if err != nil {
		panic("status: render page: " + err.Error()) // the template is embedded; only a bug gets here
	}
	return page.Bytes()
}
