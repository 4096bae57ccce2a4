package status_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/status"
)

const wantCSP = "default-src 'self'; connect-src 'self'"

func get(t *testing.T, h http.Handler, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestPageAndAssets(t *testing.T) {
	h := status.Handler()
	cases := []struct {
		path, contentType string
		contains          []string
	}{
		{"/", "text/html; charset=utf-8", []string{
			`<script type="module" src="status/app.js"></script>`,
			`<link rel="stylesheet" href="status/style.css">`,
			`href="status/icon.svg"`,
			`id="broker-state"`, `data-up=""`,
			`<tbody id="broadcasts">`, `<tbody id="connections">`, `<tbody id="streams">`,
			`<tbody id="rejections">`, `<tbody id="auth-failures">`,
			`<label class="fact-label" for="log-level">`,
			`data-live="0"`,
		}},
		{status.ScriptPath, "text/javascript; charset=utf-8", []string{
			`"api/status"`, `"api/events"`, `"loglevel"`, `"admin_token"`,
			`document.body.dataset.live`,
		}},
		{status.StylePath, "text/css; charset=utf-8", []string{"@media (max-width: 40rem)", "prefers-color-scheme: dark"}},
		{status.IconPath, "image/svg+xml", []string{"<svg"}},
	}
	for _, tc := range cases {
		res, text := get(t, h, http.MethodGet, tc.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", tc.path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		checkSecurityHeaders(t, "GET "+tc.path, res)
		for _, s := range tc.contains {
			if !strings.Contains(text, s) {
				t.Errorf("GET %s: body lacks %q", tc.path, s)
			}
		}
	}
}

func checkSecurityHeaders(t *testing.T, what string, res *http.Response) {
	t.Helper()
	if got := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, wantCSP) || got != status.ContentSecurityPolicy {
		t.Errorf("%s: CSP %q, want %q (starting with %q)", what, got, status.ContentSecurityPolicy, wantCSP)
	}
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %s %q, want %q", what, k, got, want)
		}
	}
}

// The CSP forbids inline code; the page must not need any.
func TestPageHasNoInlineCode(t *testing.T) {
	_, page := get(t, status.Handler(), http.MethodGet, "/")
	for _, s := range []string{"<script>", "<style", " style=", " onclick=", " onload=", " onchange=", "javascript:", "http://", "https://", "//cdn"} {
		if strings.Contains(page, s) {
			t.Errorf("page contains %q, which the CSP blocks or the page must not need", s)
		}
	}
}

// Server data must never reach the DOM as HTML.
func TestScriptUsesNoHTMLSinks(t *testing.T) {
	_, js := get(t, status.Handler(), http.MethodGet, status.ScriptPath)
	for _, s := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", ".style."} {
		if strings.Contains(js, s) {
			t.Errorf("app.js uses %q", s)
		}
	}
}

// The ids and data attributes the script looks up must exist in the page.
func TestScriptIDsExistInPage(t *testing.T) {
	h := status.Handler()
	_, page := get(t, h, http.MethodGet, "/")
	_, js := get(t, h, http.MethodGet, status.ScriptPath)
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\("([a-z-]+)"\)`).FindAllStringSubmatch(js, -1) {
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\bid: "([a-z-]+)"`).FindAllStringSubmatch(js, -1) {
		ids[m[1]] = true
		ids[m[1]+"-empty"] = true
	}
	for _, m := range regexp.MustCompile(`\["([a-z]+-filter)", "[a-z]+"\]`).FindAllStringSubmatch(js, -1) {
		ids[m[1]] = true
	}
	if len(ids) < 20 {
		t.Fatalf("found only %d ids in app.js: %v", len(ids), ids)
	}
	for id := range ids {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("app.js uses #%s, which the page lacks", id)
		}
	}
}

func TestTokenIsPassedToAssets(t *testing.T) {
	h := status.Handler()
	_, page := get(t, h, http.MethodGet, "/?"+status.TokenParam+"=s3cr%2Bt")
	for _, p := range []string{status.ScriptPath, status.StylePath, status.IconPath} {
		want := `"` + p[1:] + `?` + status.TokenParam + `=s3cr%2bt"`
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestTokenIsEscaped(t *testing.T) {
	h := status.Handler()
	evil := `x"><script>alert(1)</script>&y=1`
	_, page := get(t, h, http.MethodGet, "/?"+status.TokenParam+"="+url.QueryEscape(evil))
	if strings.Contains(page, "<script>alert") || strings.Contains(page, `x">`) || strings.Contains(page, "&y=1") {
		t.Errorf("token was not escaped:\n%s", page)
	}
	if !strings.Contains(page, `status/app.js?admin_token=x%22%3e%3cscript%3ealert%281%29%3c%2fscript%3e%26y%3d1"`) {
		t.Errorf("escaped token missing from script URL:\n%s", page)
	}

	_, page = get(t, h, http.MethodGet, "/?"+status.TokenParam+"="+strings.Repeat("a", 513))
	if strings.Contains(page, "admin_token=") {
		t.Error("an overlong token was copied into the page")
	}
}

func TestHead(t *testing.T) {
	h := status.Handler()
	for _, p := range []string{"/", status.ScriptPath} {
		res, body := get(t, h, http.MethodHead, p)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Length") == "" || body != "" {
			t.Errorf("HEAD %s: status %d, Content-Length %q, body %d bytes", p, res.StatusCode, res.Header.Get("Content-Length"), len(body))
		}
		checkSecurityHeaders(t, "HEAD "+p, res)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	h := status.Handler()
	for _, p := range []string{"/index.html", "/status/", "/status", "/status/missing.js", "/assets/app.js",
		"/favicon.ico", "/api/status", "/status/app.js/", "//status/app.js"} {
		res, _ := get(t, h, http.MethodGet, p)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, res.StatusCode)
		}
		checkSecurityHeaders(t, "GET "+p, res)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		for _, p := range []string{"/", status.ScriptPath, status.StylePath} {
			res, _ := get(t, h, m, p)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", m, p, res.StatusCode)
			}
			if got := res.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", m, p, got)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := httptest.NewServer(status.Handler())
	defer srv.Close()
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			target := srv.URL + "/"
			if i%2 == 1 {
				target += "?admin_token=t"
			}
			res, err := http.Get(target)
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
