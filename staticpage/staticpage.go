// Package staticpage serves the embedded pages cablecar ships (the dev
// console and the status page): fixed files, GET and HEAD only, with the
// security headers each page asks for.
package staticpage

import (
	"io/fs"
	"net/http"
	"strconv"
)

// File is one response body with its content type.
type File struct {
	ContentType string
	Body        []byte
}

// Headers are set on every response, errors included (for example a
// Content-Security-Policy).
type Headers map[string]string

// Set writes the headers onto w.
func (hs Headers) Set(w http.ResponseWriter) {
	for k, v := range hs {
		w.Header().Set(k, v)
	}
}

// Write answers r with f: 404 when f is nil, 405 for methods other than
// GET and HEAD, else the body (none for HEAD).
func Write(w http.ResponseWriter, r *http.Request, f *File) {
	if f == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", f.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(f.Body)
}

// MustRead reads an embedded file; a missing one is a build bug.
func MustRead(fsys fs.FS, name string) []byte {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		panic("staticpage: " + err.Error())
	}
	return b
}
