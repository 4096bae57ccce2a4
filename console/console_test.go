package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/console"
)

const wantCSP = "default-src 'self'; connect-src 'self' ws: wss:"

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPageAndAssets(t *testing.T) {
	h := console.Handler("/cable")
	cases := []struct {
		path, contentType string
		contains          []string
	}{
		{"/", "text/html; charset=utf-8", []string{
			`<meta name="action-cable-url" content="/cable">`,
			`<meta name="cablecar-broadcast-url" content="/_broadcast">`,
			`src="` + console.ScriptPath + `"`,
			`href="` + console.StylePath + `"`,
			`<label for="subscribe-stream">`,
		}},
		{console.ScriptPath, "text/javascript; charset=utf-8", []string{`"actioncable-v1-json"`, `"StreamChannel"`}},
		{console.StylePath, "text/css; charset=utf-8", []string{".frames.hide-pings"}},
		{console.IconPath, "image/svg+xml", []string{"<svg"}},
	}
	for _, tc := range cases {
		res := get(t, h, http.MethodGet, tc.path)
		text := body(t, res)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", tc.path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if got := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, wantCSP) {
			t.Errorf("GET %s: CSP %q, want it to start with %q", tc.path, got, wantCSP)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", tc.path, got)
		}
		for _, s := range tc.contains {
			if !strings.Contains(text, s) {
				t.Errorf("GET %s: body lacks %q", tc.path, s)
			}
		}
	}
}

func TestPageHasNoInlineCode(t *testing.T) {
	page := body(t, get(t, console.Handler("/cable"), http.MethodGet, "/"))
	for _, s := range []string{"<script>", "<style", " style=", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(page, s) {
			t.Errorf("page contains %q, which the CSP blocks", s)
		}
	}
}

func TestCablePathIsEscaped(t *testing.T) {
	page := body(t, get(t, console.Handler(`/ca"ble<x>`), http.MethodGet, "/"))
	if strings.Contains(page, `"ble<x>`) {
		t.Errorf("cable path was not escaped:\n%s", page)
	}
}

func TestHead(t *testing.T) {
	res := get(t, console.Handler("/cable"), http.MethodHead, "/")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD /: status %d, Content-Length %q", res.StatusCode, res.Header.Get("Content-Length"))
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	h := console.Handler("/cable")
	for _, path := range []string{"/index.html", "/console/", "/console/missing.js", "/assets/app.js", "/favicon.ico"} {
		if res := get(t, h, http.MethodGet, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, path := range []string{"/", console.ScriptPath} {
			res := get(t, h, m, path)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", m, path, res.StatusCode)
			}
			if got := res.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", m, path, got)
			}
		}
	}
}
