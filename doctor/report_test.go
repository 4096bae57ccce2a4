package doctor

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestReportText(t *testing.T) {
	r := &Report{}
	r.Add(
		Result{Status: OK, Check: "redis reachable", Message: "redis://127.0.0.1:6379/0 (redis 7.0.15)"},
		Result{Status: Fail, Check: "redis maxmemory-policy", Message: "allkeys-lru: jobs vanish", Fix: "CONFIG SET maxmemory-policy noeviction"},
		Result{Status: Skip, Check: "routes", Message: "skipped", Fix: "not shown for SKIP"},
	)
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"OK    redis reachable         redis://127.0.0.1:6379/0 (redis 7.0.15)\n" +
		"FAIL  redis maxmemory-policy  allkeys-lru: jobs vanish\n" +
		"                              → fix: CONFIG SET maxmemory-policy noeviction\n" +
		"SKIP  routes                  skipped\n" +
		"\n" +
		"1 FAIL, 1 OK, 1 SKIP\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	if !r.Failed() {
		t.Error("Failed() = false with a FAIL")
	}
}

func TestReportFailed(t *testing.T) {
	for _, tc := range []struct {
		statuses []Status
		failed   bool
	}{
		{nil, false},
		{[]Status{OK, Skip, Warn}, false},
		{[]Status{OK, Fail}, true},
	} {
		r := &Report{}
		for _, s := range tc.statuses {
			r.Add(Result{Status: s, Check: "c"})
		}
		if r.Failed() != tc.failed {
			t.Errorf("%v: Failed() = %v", tc.statuses, r.Failed())
		}
	}
}

func TestReportJSON(t *testing.T) {
	r := &Report{}
	r.Add(Result{Status: Warn, Check: "routes", Message: "none", Fix: "set <CABLECAR_ROUTES>"}, Result{Status: OK, Check: "settings", Message: "ok"})
	var b strings.Builder
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK      bool     `json:"ok"`
		Fail    int      `json:"fail"`
		Warn    int      `json:"warn"`
		Results []Result `json:"results"`
	}
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatalf("%v in %s", err, b.String())
	}
	if !got.OK || got.Fail != 0 || got.Warn != 1 || len(got.Results) != 2 || got.Results[0] != r.Results[0] {
		t.Errorf("decoded %+v from %s", got, b.String())
	}
	if !strings.Contains(b.String(), `"status": "WARN"`) || !strings.Contains(b.String(), "<CABLECAR_ROUTES>") {
		t.Errorf("want readable status and unescaped text:\n%s", b.String())
	}

	b.Reset()
	if err := (&Report{}).WriteJSON(&b); err != nil || !strings.Contains(b.String(), `"results": []`) {
		t.Errorf("empty report: %v %s", err, b.String())
	}
}
