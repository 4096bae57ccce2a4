package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// serveHealth answers 200 when the server accepts connections and the
// broker delivers, else 503 with the reason.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	err := errDraining
	if !s.draining.Load() {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err = s.broker.Health(ctx)
		cancel()
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// broadcastItem is one POST /_broadcast message; data goes out verbatim.
type broadcastItem struct {
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
}

// serveBroadcast publishes {"stream","data"} or an array of them through
// the broker, so every node's subscribers get it.
func (s *Server) serveBroadcast(w http.ResponseWriter, r *http.Request) {
	if s.cfg.BroadcastKey == "" && !s.cfg.OpenBroadcast {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !s.cfg.OpenBroadcast && !bearerMatches(r.Header.Get("Authorization"), s.cfg.BroadcastKey) {
		s.log.Info("broadcast refused: missing or wrong key", "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "missing or wrong broadcast key (Authorization: Bearer $CABLECAR_BROADCAST_KEY)")
		return
	}
	items, err := readBroadcast(http.MaxBytesReader(w, r.Body, maxBroadcastBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := 0
	for _, it := range items {
		if err := s.broker.Publish(r.Context(), it.Stream, it.Data); err != nil {
			// During a known outage the broker has logged it once and the
			// caller gets 503 with the reason: one more error line per
			// request would bury the log.
			level := slog.LevelError
			if s.broker.Health(r.Context()) != nil {
				level = slog.LevelDebug
			}
			s.log.Log(r.Context(), level, "broadcast failed", "stream", it.Stream, "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error(), "delivered_to_broker": n})
			return
		}
		n++
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"delivered_to_broker": n})
}

// readBroadcast decodes the body and names the first problem found.
func readBroadcast(body io.Reader) ([]broadcastItem, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("body over %d bytes", tooBig.Limit)
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	var items []broadcastItem
	if len(raw) > 0 && raw[0] == '[' {
		err = json.Unmarshal(raw, &items)
	} else {
		var one broadcastItem
		err = json.Unmarshal(raw, &one)
		items = []broadcastItem{one}
	}
	if err != nil {
		return nil, fmt.Errorf(`body must be {"stream":"…","data":…} or an array of those: %v`, err)
	}
	if len(items) == 0 {
		return nil, errors.New("empty array: nothing to broadcast")
	}
	for i, it := range items {
		switch {
		case it.Stream == "":
			return nil, fmt.Errorf(`item %d: "stream" is missing or empty`, i)
		case it.Data == nil:
			return nil, fmt.Errorf(`item %d: "data" is missing`, i)
		}
	}
	return items, nil
}

// bearerMatches compares the presented key in constant time.
func bearerMatches(header, key string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// headerHasToken reports whether a comma-separated header holds token,
// case-insensitively ("Connection: keep-alive, Upgrade").
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
