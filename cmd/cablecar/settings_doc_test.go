package main

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestEverySettingIsDocumented: every CABLECAR_* variable the command reads
// is a row of the settings table in docs/reference.md, and every row there
// is a variable it reads, so the reference cannot drift from the code.
func TestEverySettingIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(CABLECAR_[A-Z0-9_]+)` \\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	read := map[string]bool{}
	for _, v := range envVars(reflect.TypeOf(config{})) {
		read[v.name] = true
	}
	if len(read) < 40 {
		t.Fatalf("found only %d settings in the config struct; has envVars changed?", len(read))
	}
	var missing, extra []string
	for name := range read {
		if !documented[name] {
			missing = append(missing, name)
		}
	}
	for name := range documented {
		if !read[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("settings read but not in docs/reference.md's table:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("rows in docs/reference.md's table that no setting reads:\n  %s", strings.Join(extra, "\n  "))
	}
}

// TestBadValueNamesTheVariable: a value that does not parse is reported with
// the variable's name; a field name several settings share names each of
// them, since the parser reports only the field.
func TestBadValueNamesTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CABLECAR_PING_INTERVAL": "soon"}, `CABLECAR_PING_INTERVAL: unable to parse duration: time: invalid duration "soon"`},
		{map[string]string{"CABLECAR_JOB_STATE_TTL": "1 hour"}, `CABLECAR_JOB_STATE_TTL: unable to parse duration: time: unknown unit " hour" in duration "1 hour"`},
		{map[string]string{"CABLECAR_JOBS_SIDEKIQ_POLL_INTERVAL": "x"},
			`CABLECAR_JOBS_SIDEKIQ_POLL_INTERVAL or CABLECAR_JOBS_SOLID_QUEUE_POLL_INTERVAL: unable to parse duration: time: invalid duration "x"`},
	}
	for _, tt := range tests {
		_, err := loadConfig(tt.env)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v: got %v, want %s", tt.env, err, tt.want)
		}
	}
}
