package jobstest

import (
	"bufio"
	"encoding/json"
	"io"
	"testing"
)

// exchange sends req as one JSON line to a helper process (the BullMQ
// worker, the Celery sender) and returns the id of its {"id"} answer,
// failing tb on an error answer or a dead process. who names the process
// for messages; the caller serialises exchanges.
func exchange(tb testing.TB, w io.Writer, r *bufio.Reader, logPath, who string, req any) string {
	tb.Helper()
	line, err := json.Marshal(req)
	if err != nil {
		tb.Fatalf("jobstest: encode the request to %s: %v", who, err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		tb.Fatalf("jobstest: send to %s: %v; log:\n%s", who, err, readLog(logPath))
	}
	answer, err := r.ReadString('\n')
	if err != nil {
		tb.Fatalf("jobstest: read the answer of %s: %v; log:\n%s", who, err, readLog(logPath))
	}
	var reply struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(answer), &reply); err != nil || reply.ID == "" {
		tb.Fatalf("jobstest: %s answered %q (%v)", who, answer, err)
	}
	return reply.ID
}
