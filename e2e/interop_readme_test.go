package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's "Use it with…" code is the code the interop tests run: each
// block marked <!-- snippet: PATH --> must be a copy of consecutive lines of
// PATH (its indentation may differ as a whole), the settings of `cablecar
// serve` must be documentEnv's, and the command lines must be the tests'.
func TestInteropREADMESnippets(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)

	blocks := regexp.MustCompile("(?s)<!-- snippet: (\\S+) -->\n```[a-z]*\n(.*?)\n```").FindAllStringSubmatch(readme, -1)
	seen := map[string]int{}
	for _, b := range blocks {
		path, snippet := b[1], b[2]
		seen[path]++
		src, err := os.ReadFile(filepath.Join("..", path))
		if err != nil {
			t.Errorf("README snippet from %s: %v", path, err)
			continue
		}
		if !containsLines(string(src), snippet) {
			t.Errorf("README snippet is not a copy of lines of %s:\n%s", path, snippet)
		}
	}
	for _, path := range []string{
		"examples/rails-sidekiq/worker.rb", "e2e/browser/broadcast.rb",
		"examples/python/publish.py", "examples/node/publish.mjs", "examples/shell/publish.sh",
	} {
		if seen[path] == 0 {
			t.Errorf("the README has no snippet marked as copied from %s", path)
		}
	}

	// Step 2: `cablecar serve` with the settings the tests use (the Redis URL
	// and the JWT secret aside).
	serve := regexp.MustCompile("(?s)```sh\n((?:\\s*CABLECAR_\\w+=.*?\\\\\n)+)\\s*cablecar serve\n").FindStringSubmatch(readme)
	if serve == nil {
		t.Fatal("no `cablecar serve` block with settings in the README")
	}
	want := documentEnv("")
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(serve[1]), "\n") {
		k, v, _ := strings.Cut(strings.TrimSuffix(strings.TrimSpace(line), " \\"), "=")
		got[k] = strings.Trim(v, "'")
	}
	for k, v := range want {
		if k == "CABLECAR_REDIS_URL" || k == "CABLECAR_JWT_SECRET" {
			if _, ok := got[k]; !ok {
				t.Errorf("the README's serve command lacks %s", k)
			}
			continue
		}
		if got[k] != v {
			t.Errorf("the README's serve command has %s=%q; the tests run with %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the README's serve command sets %v; the tests set %v", got, want)
	}

	for _, cmd := range []string{
		"sidekiq " + strings.Join(sidekiqArgs, " "),
		"ruby enqueue.rb ProcessDocumentJob 123",
	} {
		if !strings.Contains(readme, cmd) {
			t.Errorf("the README does not show the command the test runs: %s", cmd)
		}
	}
}

// containsLines reports whether the lines of snippet appear as consecutive
// lines of src, all shifted by the same indentation.
func containsLines(src, snippet string) bool {
	lines := strings.Split(src, "\n")
	want := strings.Split(snippet, "\n")
	for i := 0; i+len(want) <= len(lines); i++ {
		indent, ok := strings.CutSuffix(lines[i], want[0])
		if !ok || strings.TrimSpace(indent) != "" {
			continue
		}
		match := true
		for j, w := range want {
			l := lines[i+j]
			if w == "" && strings.TrimSpace(l) == "" {
				continue
			}
			if l != indent+w {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
