package pgtest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestStartRestart(t *testing.T) {
	s := Start(t)
	s.Exec(t, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
	s.Kill()
	if err := s.psql("cablecar", "SELECT 1"); err == nil {
		t.Fatal("query succeeded after Kill")
	}
	s.Restart(t)
	out, err := exec.Command(s.bin+"/psql", "-X", "-tA", s.URL, "-c", "SELECT v FROM t").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("after restart: %q %v", out, err)
	}
}
