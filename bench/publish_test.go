package bench

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// A round too big for one POST is split into bodies under the server's
// 1 MiB cap, every message sent once and in order, in both formats.
func TestHTTPPublisherSplitsRounds(t *testing.T) {
	for _, anyCable := range []bool{false, true} {
		var mu sync.Mutex
		var bodies [][]byte
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
		}))
		p := newHTTPPublisher(srv.URL, "", anyCable)
		payload := `{"pad":"` + strings.Repeat("x", 300<<10) + `"}`
		msgs := []message{{"a", []byte(payload)}, {"b", []byte(payload)}, {"c", []byte(payload)}, {"d", []byte(`{"n":1}`)}}
		if _, err := p.publish(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		p.close()
		srv.Close()
		var streams []string
		for _, b := range bodies {
			if len(b) >= 1<<20 {
				t.Errorf("anycable=%v: a body of %d bytes, over the 1 MiB cap", anyCable, len(b))
			}
			var items []struct {
				Stream string          `json:"stream"`
				Data   json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(b, &items); err != nil {
				t.Fatalf("anycable=%v: body is not an array of items: %v", anyCable, err)
			}
			for _, it := range items {
				streams = append(streams, it.Stream)
				if isString := it.Data[0] == '"'; isString != anyCable {
					t.Errorf("anycable=%v: data %.20s…", anyCable, it.Data)
				}
			}
		}
		if len(bodies) < 2 || strings.Join(streams, "") != "abcd" {
			t.Errorf("anycable=%v: %d bodies with streams %v, want the round split, a to d once each", anyCable, len(bodies), streams)
		}
	}
}
