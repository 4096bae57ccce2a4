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
	"strconv"
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

// asset is one response body with its content type.
type asset struct {
	contentType string
	body        []byte
}

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
	files := map[string]asset{
		"/":        {"text/html; charset=utf-8", page.Bytes()},
		ScriptPath: {"text/javascript; charset=utf-8", mustRead("assets/app.js")},
		StylePath:  {"text/css; charset=utf-8", mustRead("assets/style.css")},
		IconPath:   {"image/svg+xml", mustRead("assets/favicon.svg")},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", f.contentType)
		h.Set("Content-Length", strconv.Itoa(len(f.body)))
		// A development tool: always fetch the current build.
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(f.body)
	})
}

func mustRead(name string) []byte {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic("console: " + err.Error())
	}
	return b
}
