package proxy

import (
	"slices"
	"testing"
)

func TestUnwritten(t *testing.T) {
	batch := func() [][]byte { return [][]byte{[]byte("abc"), []byte("de"), []byte("fgh")} }
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{0, []string{"abc", "de", "fgh"}},
		{1, []string{"bc", "de", "fgh"}},
		{3, []string{"de", "fgh"}},
		{4, []string{"e", "fgh"}},
		{5, []string{"fgh"}},
		{7, []string{"h"}},
		{8, nil},
	} {
		var got []string
		for _, f := range unwritten(batch(), tc.n) {
			got = append(got, string(f))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("unwritten after %d bytes = %q, want %q", tc.n, got, tc.want)
		}
	}
}
