package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthTimeout bounds the /health request; cablecar answers within 2s.
const healthTimeout = 3 * time.Second

// checkHealthURL asks a running cablecar's /health. Nothing listening is a
// warning, not a failure: doctor may run before cablecar is started.
func checkHealthURL(ctx context.Context, base string) Result {
	shown := strings.TrimRight(redactURL(base), "/") + "/health"
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/health", nil)
	if err != nil {
		return Result{Status: Fail, Check: nameHealth, Message: fmt.Sprintf("%s: %v", shown, urlErrReason(err)),
			Fix: "pass --url http://host:port, the address of a running cablecar"}
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		reason := urlErrReason(err)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return Result{Status: Warn, Check: nameHealth, Message: fmt.Sprintf("no cablecar answering at %s (%v)", shown, reason),
				Fix: "start it (cablecar serve), or point --url at the running one; this is expected if it is not started yet"}
		}
		return Result{Status: Fail, Check: nameHealth, Message: fmt.Sprintf("%s: %v", shown, reason),
			Fix: "something accepts connections there but does not answer like cablecar; check --url and CABLECAR_ADDR"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var health struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	isCablecar := json.Unmarshal(body, &health) == nil && health.Status != ""
	switch {
	case resp.StatusCode == http.StatusOK && health.Status == "ok":
		return Result{Status: OK, Check: nameHealth, Message: shown + ": ok (serving, and its broker delivers)"}
	case resp.StatusCode == http.StatusServiceUnavailable && isCablecar:
		return Result{Status: Fail, Check: nameHealth, Message: fmt.Sprintf("%s: %s: %s", shown, health.Status, health.Reason),
			Fix: "the running cablecar cannot deliver: read its log; with Redis it reconnects on its own once Redis answers (check the CABLECAR_REDIS_URL it runs with)"}
	}
	return Result{Status: Fail, Check: nameHealth,
		Message: fmt.Sprintf("%s answered %s, which is not cablecar's health answer: %s", shown, resp.Status, shorten(strings.TrimSpace(string(body)), 120)),
		Fix:     "point --url at cablecar itself (the port of its CABLECAR_ADDR), not at another service or a proxy"}
}
