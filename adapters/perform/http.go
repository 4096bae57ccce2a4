package perform

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cablecar/cablecar/proxy"
)

// SignatureHeader carries "sha256=" + the lowercase hex HMAC-SHA256 of the
// request body under the shared secret, when one is set.
const SignatureHeader = "X-Cablecar-Signature"

// HTTPHook POSTs each action as JSON to a URL, at most once: no retries. A
// response other than 2xx, or none within the timeout, is a failure. The
// body has the fields of a RedisStream entry, with streams, data and
// claims as JSON values rather than strings:
//
//	{"identifier":"…","channel":"…","streams":[…],"action":"…","data":{…},
//	 "user":"…","claims":{…}|null,"connection_identifier":"…","conn":"…","at":"…"}
type HTTPHook struct {
	url     string
	shown   string // url for errors, any password redacted
	secret  []byte
	timeout time.Duration
	client  *http.Client
}

// NewHTTPHook returns a Performer that POSTs to rawURL, signed with secret
// when it is not empty; timeout 0 means DefaultTimeout.
func NewHTTPHook(rawURL, secret string, timeout time.Duration) *HTTPHook {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	h := &HTTPHook{url: rawURL, shown: rawURL, timeout: timeout, client: &http.Client{}}
	if u, err := url.Parse(rawURL); err == nil {
		h.shown = u.Redacted()
	}
	if secret != "" {
		h.secret = []byte(secret)
	}
	return h
}

// hookBody is the POSTed JSON; its field order is the documented one.
type hookBody struct {
	Identifier           string          `json:"identifier"`
	Channel              string          `json:"channel"`
	Streams              []string        `json:"streams"`
	Action               string          `json:"action"`
	Data                 json.RawMessage `json:"data"`
	User                 string          `json:"user"`
	Claims               map[string]any  `json:"claims"`
	ConnectionIdentifier string          `json:"connection_identifier"`
	Conn                 string          `json:"conn"`
	At                   string          `json:"at"`
}

// Body returns the JSON that HTTPHook POSTs for a.
func Body(a proxy.Action) ([]byte, error) {
	streams := a.Streams
	if streams == nil {
		streams = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(hookBody{Identifier: a.Identifier, Channel: a.Channel, Streams: streams, Action: a.Name,
		Data: a.Data, User: a.User, Claims: a.Claims, ConnectionIdentifier: a.ConnectionID,
		Conn: strconv.FormatUint(a.Conn, 10), At: a.At.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Perform POSTs a once. Failures name their cause: "timeout", "http_<status>"
// or "http".
func (h *HTTPHook) Perform(ctx context.Context, a proxy.Action) error {
	body, err := Body(a)
	if err != nil {
		return &causeError{cause: "encode", err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return &causeError{cause: "http", err: fmt.Errorf("POST %s: %w", h.shown, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cablecar")
	if h.secret != nil {
		req.Header.Set(SignatureHeader, Sign(h.secret, body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		cause := "http"
		if errors.Is(err, context.DeadlineExceeded) {
			cause = "timeout"
		}
		return &causeError{cause: cause, err: fmt.Errorf("POST %s: %w", h.shown, err)}
	}
	// Drained a little, so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &causeError{cause: "http_" + strconv.Itoa(resp.StatusCode), err: fmt.Errorf("POST %s: %s", h.shown, resp.Status)}
	}
	return nil
}
