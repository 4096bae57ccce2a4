// Package console serves the developer console of `cablecar dev`: a page
// that opens a plain WebSocket to the cable, subscribes to streams,
// publishes through POST /_broadcast and shows every frame.
//
// The page is three embedded files, served by Handler:
//
//	/                   the page (index.html, with the cable path filled in)
//	/console/app.js     its script
//	/console/style.css  its style sheet
//	/console/icon.svg   its icon
//
// No inline script or style is used, so the page runs under a strict
// Content-Security-Policy.
package console

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"

	"github.com/cablecar/cablecar/staticpage"
)

// Paths of the page's assets, as served by Handler.
const (
	ScriptPath = "/console/app.js"
	StylePath  = "/console/style.css"
	IconPath   = "/console/icon.svg"
)

// BroadcastPath is where the page publishes.
const BroadcastPath = "/_broadcast"

// ContentSecurityPolicy is sent with every response: only this origin's
// files, and connections to this origin and to any ws:/wss: URL (browsers
// before CSP Level 3 do not count ws: as 'self').
const ContentSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed assets
var assets embed.FS

var pageTemplate = template.Must(template.ParseFS(assets, "assets/index.html"))

// Handler serves the console page at / and its assets under /console/.
// cablePath is where the cable is mounted on the same host ("/cable"); the
// page connects there with ws:, or wss: when it was loaded over https.
// Only GET and HEAD are allowed (405 otherwise); any other path is 404.
// The handler is safe for concurrent use.
func Handler(cablePath string) http.Handler {
	var page bytes.Buffer
	err := pageTemplate.Execute(&page, struct {
		CablePath, BroadcastPath, ScriptPath, StylePath, IconPath string
	}{cablePath, BroadcastPath, ScriptPath, StylePath, IconPath})
	if err != nil {
		panic("console: render page: " + err.Error()) // the template is embedded; only a bug gets here
	}
	files := map[string]*staticpage.File{
		"/":        {ContentType: "text/html; charset=utf-8", Body: page.Bytes()},
		ScriptPath: {ContentType: "text/javascript; charset=utf-8", Body: staticpage.MustRead(assets, "assets/app.js")},
		StylePath:  {ContentType: "text/css; charset=utf-8", Body: staticpage.MustRead(assets, "assets/style.css")},
		IconPath:   {ContentType: "image/svg+xml", Body: staticpage.MustRead(assets, "assets/favicon.svg")},
	}
	headers := staticpage.Headers{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		// A development tool: always fetch the current build.
		"Cache-Control": "no-cache",
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers.Set(w)
		staticpage.Write(w, r, files[r.URL.Path])
	})
}
