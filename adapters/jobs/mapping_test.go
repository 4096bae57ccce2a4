package jobs

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/rails"
)

// args decodes a JSON array as watchers do (numbers as json.Number).
func args(t *testing.T, s string) []any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var out []any
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMappingStreams(t *testing.T) {
	const rules = `ProcessDocumentJob=document:{gid:Document:args.0}
Chat::NotifyJob=chat:{args.0.room},user:{args.1}
ExportJob=export:{job_id}:{queue}:{backend}
*=job:{job_id}`
	m, err := ParseMapping(rules, "", "myapp")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ev   Event
		want []string
		err  error // matched with errors.Is; nil: success
		msg  string
	}{
		{name: "gid of a plain id is GlobalIDParam, as DocumentChannel.broadcast_to",
			ev:   Event{Class: "ProcessDocumentJob", Args: args(t, `[123]`)},
			want: []string{"document:" + rails.GlobalIDParam("myapp", "Document", "123")}},
		{name: "ActiveJob GlobalID argument keeps its own URI",
			ev:   Event{Class: "ProcessDocumentJob", Args: args(t, `[{"_aj_globalid":"gid://otherapp/Document/7"}]`)},
			want: []string{"document:Z2lkOi8vb3RoZXJhcHAvRG9jdW1lbnQvNw"}},
		{name: "keys inside an argument, two templates",
			ev:   Event{Class: "Chat::NotifyJob", Args: args(t, `[{"room":"lobby"},42]`)},
			want: []string{"chat:lobby", "user:42"}},
		{name: "job fields", ev: Event{Class: "ExportJob", JobID: "abc", Queue: "low", Backend: "sidekiq"},
			want: []string{"export:abc:low:sidekiq"}},
		{name: "fallback rule", ev: Event{Class: "Unlisted", JobID: "j-1"}, want: []string{"job:j-1"}},
		{name: "GlobalID of another model", ev: Event{Class: "ProcessDocumentJob", Args: args(t, `[{"_aj_globalid":"gid://myapp/User/7"}]`)},
			msg: "not a Document"},
		{name: "missing argument", ev: Event{Class: "ProcessDocumentJob", Args: args(t, `[]`)}, err: rails.ErrMissingValue},
		{name: "float argument", ev: Event{Class: "Chat::NotifyJob", Args: args(t, `[{"room":"x"},1.5]`)}, err: rails.ErrUnrenderable},
		{name: "key of a non-object", ev: Event{Class: "Chat::NotifyJob", Args: args(t, `["lobby",1]`)}, err: rails.ErrMissingValue},
		{name: "absent key", ev: Event{Class: "Chat::NotifyJob", Args: args(t, `[{},1]`)}, err: rails.ErrMissingValue},
		{name: "empty job id", ev: Event{Class: "Unlisted"}, err: rails.ErrMissingValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Streams(&tt.ev)
			switch {
			case tt.err != nil || tt.msg != "":
				if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("got %q, %v; want error %v %q", got, err, tt.err, tt.msg)
				}
			case err != nil:
				t.Fatal(err)
			case !slices.Equal(got, tt.want):
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMappingUnmapped(t *testing.T) {
	m, err := ParseMapping("A=a", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Streams(&Event{Class: "B", JobID: "1"}); !errors.Is(err, ErrUnmapped) {
		t.Fatalf("got %v, want ErrUnmapped", err)
	}
}

func TestMappingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job_streams")
	if err := os.WriteFile(path, []byte("# jobs\nExportJob=export:{job_id}\n\n*=job:{job_id}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseMapping("ImportJob=import:{args.0}", path, "")
	if err != nil {
		t.Fatal(err)
	}
	for class, want := range map[string]string{"ExportJob": "export:9", "ImportJob": "import:x", "Other": "job:9"} {
		got, err := m.Streams(&Event{Class: class, JobID: "9", Args: []any{"x"}})
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("%s: got %q, %v; want %q", class, got, err, want)
		}
	}
}

func TestMappingParseErrors(t *testing.T) {
	tests := []struct{ rules, want string }{
		{"A", `missing "="`},
		{"=x", "missing job class"},
		{"A=", "empty template"},
		{"A={nope}", "unknown placeholder {nope}"},
		{"A={args.x}", `"x" is not an argument index`},
		{"A={args.-1}", "not an argument index"},
		{"A={args.0.}", "empty key"},
		{"A={gid:Document}", "want {gid:Model:args.N}"},
		{"A=a{job_id", `unbalanced "{"`},
		{"A=a}", `unbalanced "}"`},
		{"A=a;A=b", "a second rule for A"},
		{"*=a;*=b", `a second "*" rule`},
	}
	for _, tt := range tests {
		_, err := ParseMapping(tt.rules, "", "")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "CABLECAR_JOB_STREAMS") {
			t.Errorf("%q: got %v, want an error naming CABLECAR_JOB_STREAMS with %q", tt.rules, err, tt.want)
		}
	}
}
