package jobs

import (
	"encoding/json"
	"testing"
	"time"
)

func TestEventEncode(t *testing.T) {
	at := time.Date(2026, 12, 4, 14, 32, 18, 123_456_789, time.UTC)
	ev := Event{Backend: Sidekiq, JobID: "j1", Class: "ProcessDocumentJob", Queue: "default", Status: Retrying,
		ErrorClass: "RuntimeError", ErrorMessage: "boom at /app/secret.rb", RetryCount: 0, HasRetryCount: true,
		NextRetryAt: at.Add(30 * time.Second), At: at, Args: []any{"never sent"}}
	tests := []struct {
		name        string
		ev          Event
		withMessage bool
		want        string
	}{
		{"retrying, message withheld", ev, false,
			`{"type":"job","backend":"sidekiq","job_id":"j1","class":"ProcessDocumentJob","queue":"default","status":"retrying","error_class":"RuntimeError","retry_count":0,"next_retry_at":"2026-12-04T14:32:48.123Z","at":"2026-12-04T14:32:18.123Z"}`},
		{"retrying, message allowed", ev, true,
			`{"type":"job","backend":"sidekiq","job_id":"j1","class":"ProcessDocumentJob","queue":"default","status":"retrying","error_class":"RuntimeError","error_message":"boom at /app/secret.rb","retry_count":0,"next_retry_at":"2026-12-04T14:32:48.123Z","at":"2026-12-04T14:32:18.123Z"}`},
		{"progress keeps its JSON", Event{Backend: BullMQ, JobID: "7", Class: "resize", Status: Progress, Progress: json.RawMessage(`{"pct":40}`), At: at}, false,
			`{"type":"job","backend":"bullmq","job_id":"7","class":"resize","status":"progress","progress":{"pct":40},"at":"2026-12-04T14:32:18.123Z"}`},
		{"invalid progress is left out", Event{Backend: BullMQ, JobID: "7", Class: "resize", Status: Progress, Progress: json.RawMessage(`{`), At: at}, false,
			`{"type":"job","backend":"bullmq","job_id":"7","class":"resize","status":"progress","at":"2026-12-04T14:32:18.123Z"}`},
	}
	for _, tt := range tests {
		if got := string(tt.ev.Encode(tt.withMessage)); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestUnixTimes(t *testing.T) {
	if got := UnixSeconds(1764858738.25).Format(timeLayout); got != "2025-12-04T14:32:18.250Z" {
		t.Errorf("UnixSeconds: %s", got)
	}
	if got := UnixMillis(1764858738250).Format(timeLayout); got != "2025-12-04T14:32:18.250Z" {
		t.Errorf("UnixMillis: %s", got)
	}
}
