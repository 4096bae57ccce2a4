package history

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestParseRules(t *testing.T) {
	tests := []struct {
		in   string
		want Rules
		err  bool
	}{
		{"", nil, false},
		{"document:*:100:5m", Rules{{"document:*", 100, 5 * time.Minute}}, false},
		{" chat:*:50:30s ; feed:10:1h,*:5:1s ", Rules{{"chat:*", 50, 30 * time.Second}, {"feed", 10, time.Hour}, {"*", 5, time.Second}}, false},
		{"gid://app/Post/1:post:20:2m", Rules{{"gid://app/Post/1:post", 20, 2 * time.Minute}}, false},
		{"document:*:100", nil, true}, // ttl "100"? no: size "*" is not a number
		{"doc:0:5m", nil, true},       // size 0
		{"doc:-1:5m", nil, true},      // negative size
		{"doc:10:soon", nil, true},    // bad ttl
		{"doc:10:500ms", nil, true},   // ttl under a second
		{":10:5m", nil, true},         // no pattern
		{"doc", nil, true},            // no size, no ttl
		{"a:1:1s,broken", nil, true},  // one bad item fails all
	}
	for _, tt := range tests {
		got, err := ParseRules(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseRules(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRules(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	rules := Rules{{"document:*", 1, time.Minute}, {"chat:*:messages", 2, time.Minute}, {"exact", 3, time.Minute}}
	tests := []struct {
		stream string
		size   int // 0: no rule
	}{
		{"document:1", 1},
		{"document:", 1},
		{"document", 0},
		{"chat:9:messages", 2},
		{"chat:9:x:messages", 2},
		{"chat:9:messages:old", 0},
		{"exact", 3},
		{"exactly", 0},
		{"other", 0},
	}
	for _, tt := range tests {
		r, ok := rules.Match(tt.stream)
		if tt.size == 0 && ok || tt.size != 0 && r.Size != tt.size {
			t.Errorf("Match(%q) = %+v, %v; want size %d", tt.stream, r, ok, tt.size)
		}
	}
}

func TestRedisPattern(t *testing.T) {
	r := Rule{Pattern: `doc[1]?:*\x`}
	if got, want := r.RedisPattern("app*:"), `app\*:doc\[1\]\?:*\\x`; got != want {
		t.Errorf("RedisPattern = %q, want %q", got, want)
	}
}

func TestAnnotate(t *testing.T) {
	p := Annotate("ab12", 42, []byte(`{"a":"x\ny"}`))
	if string(p) != "42 ab12\n{\"a\":\"x\\ny\"}" {
		t.Fatalf("Annotate = %q", p)
	}
	ep, off, data, err := ParseAnnotated(p)
	if err != nil || ep != "ab12" || off != 42 || string(data) != `{"a":"x\ny"}` {
		t.Fatalf("ParseAnnotated = %q %d %q %v", ep, off, data, err)
	}
	for _, bad := range []string{"", "42 ab12", "x ab12\n{}", "0 ab12\n{}", "42\n{}", "42 \n{}"} {
		if _, _, _, err := ParseAnnotated([]byte(bad)); err == nil {
			t.Errorf("ParseAnnotated(%q): no error", bad)
		}
	}
}

func entries(from, to uint64, t0 int64) []Entry {
	var out []Entry
	for o := from; o <= to; o++ {
		out = append(out, Entry{Offset: o, Time: t0 + int64(o)*1000, Data: []byte{byte('0' + o%10)}})
	}
	return out
}

func offsets(es []Entry) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.Offset)
	}
	return out
}

func TestSelect(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	t0 := now.Add(-time.Minute).UnixMilli() // entry o is at t0 + o s
	ttl := 5 * time.Minute
	full := Snapshot{Epoch: "e1", Last: 10, Entries: entries(1, 10, t0)}
	trimmed := Snapshot{Epoch: "e1", Last: 10, Entries: entries(5, 10, t0), DroppedAt: t0 + 4000}
	pos := func(epoch string, off uint64) Request {
		return Request{Streams: map[string]Position{"s": {epoch, off}}}
	}
	tests := []struct {
		name   string
		snap   Snapshot
		req    Request
		want   []uint64
		reject bool
	}{
		{"after an offset", full, pos("e1", 7), []uint64{8, 9, 10}, false},
		{"at the last offset", full, pos("e1", 10), []uint64{}, false},
		{"from the start", full, pos("e1", 0), []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, false},
		{"right before the oldest kept", trimmed, pos("e1", 4), []uint64{5, 6, 7, 8, 9, 10}, false},
		{"past what is kept", trimmed, pos("e1", 3), nil, true},
		{"another epoch", full, pos("e0", 7), nil, true},
		{"stream gone", Snapshot{}, pos("e1", 7), nil, true},
		{"ahead of the stream", full, pos("e1", 11), nil, true},
		{"all expired, position at the last", Snapshot{Epoch: "e1", Last: 10, DroppedAt: t0 + 10000}, pos("e1", 10), []uint64{}, false},
		{"all expired, position before", Snapshot{Epoch: "e1", Last: 10, DroppedAt: t0 + 10000}, pos("e1", 9), nil, true},
		{"since a time", full, Request{Since: (t0 + 8000) / 1000}, []uint64{8, 9, 10}, false},
		{"since before trimmed ones", trimmed, Request{Since: (t0 + 3000) / 1000}, nil, true},
		{"since after trimmed ones", trimmed, Request{Since: (t0 + 6000) / 1000}, []uint64{6, 7, 8, 9, 10}, false},
		{"since older than the ttl", full, Request{Since: now.Add(-ttl - time.Second).Unix()}, nil, true},
		{"since, empty stream", Snapshot{}, Request{Since: now.Unix()}, []uint64{}, false},
		{"no since, no position", full, Request{}, []uint64{}, false},
		{"position on another stream only", full, Request{Since: (t0 + 9000) / 1000, Streams: map[string]Position{"other": {"x", 1}}}, []uint64{9, 10}, false},
	}
	for _, tt := range tests {
		got, err := Select(tt.snap, "s", tt.req, now, ttl)
		if tt.reject {
			if !errors.Is(err, ErrCannotRestore) {
				t.Errorf("%s: err = %v, want ErrCannotRestore", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(offsets(got), tt.want) {
			t.Errorf("%s: offsets %v, want %v", tt.name, offsets(got), tt.want)
		}
	}
}

func TestMemory(t *testing.T) {
	clock := time.UnixMilli(5_000_000)
	m := NewMemory(Rules{{"doc:*", 3, time.Minute}})
	m.now = func() time.Time { return clock }
	if _, _, ok := m.Append("other", []byte(`1`)); ok {
		t.Fatal("a stream without a rule was recorded")
	}
	var epoch string
	for i := 1; i <= 5; i++ {
		e, off, ok := m.Append("doc:1", []byte{byte('0' + i)})
		if !ok || off != uint64(i) || (epoch != "" && e != epoch) || len(e) != 8 {
			t.Fatalf("Append %d = %q %d %v", i, e, off, ok)
		}
		epoch = e
		clock = clock.Add(time.Second)
	}
	snap, _ := m.Snapshot(t.Context(), "doc:1")
	if snap.Epoch != epoch || snap.Last != 5 || !reflect.DeepEqual(offsets(snap.Entries), []uint64{3, 4, 5}) ||
		string(snap.Entries[0].Data) != "3" || snap.DroppedAt != 5_000_000+1000 {
		t.Fatalf("snapshot after 5 appends, size 3: %+v", snap)
	}
	// 58 s later, entry 3 (at +2 s) is older than the minute.
	clock = clock.Add(58 * time.Second)
	snap, _ = m.Snapshot(t.Context(), "doc:1")
	if !reflect.DeepEqual(offsets(snap.Entries), []uint64{4, 5}) || snap.DroppedAt != 5_000_000+2000 {
		t.Fatalf("snapshot after the ttl of one entry: %+v", snap)
	}
	// A minute after the last message, the stream is forgotten: a new
	// epoch starts at offset 1.
	clock = clock.Add(time.Minute)
	if snap, _ = m.Snapshot(t.Context(), "doc:1"); snap.Epoch != "" {
		t.Fatalf("idle stream still has a snapshot: %+v", snap)
	}
	e, off, _ := m.Append("doc:1", []byte(`x`))
	if e == epoch || off != 1 {
		t.Fatalf("after idling: epoch %q offset %d, want a new epoch at 1", e, off)
	}
	if streams, msgs := m.Len(); streams != 1 || msgs != 1 {
		t.Fatalf("Len = %d, %d", streams, msgs)
	}
}
