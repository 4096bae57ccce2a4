package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"
)

// tlsDo sends one inline command over TLS, verifying the server with
// certs' CA, and returns the first reply line.
func tlsDo(t *testing.T, certs *Certs, addr, cmd string) string {
	t.Helper()
	pem, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

func TestSecureServers(t *testing.T) {
	certs := NewCerts(t)
	sec := Secure{Certs: certs, User: "alice", Password: "secret"}
	m := StartSecure(t, sec)
	if m.ClientAddr == m.Addr {
		t.Fatalf("ClientAddr %s is the plain port", m.ClientAddr)
	}
	if got := tlsDo(t, certs, m.ClientAddr, "AUTH alice secret"); got != "+OK" {
		t.Errorf("AUTH over TLS = %q", got)
	}
	if got, _ := do(t, m.Addr, "GET k"); !strings.HasPrefix(got, "-NOPERM") {
		t.Errorf("GET as the default user = %q, want NOPERM", got)
	}
	s := StartSecureSentinel(t, "m", m, sec)
	waitInfo(t, s.Addr, "sentinel", "status=ok,address="+m.ClientAddr, startTimeout)
	if got := tlsDo(t, certs, s.ClientAddr, "AUTH alice secret"); got != "+OK" {
		t.Errorf("sentinel AUTH over TLS = %q", got)
	}
	nodes := StartSecureCluster(t, 3, sec)
	if got := tlsDo(t, certs, nodes[1].ClientAddr, "AUTH alice secret"); got != "+OK" {
		t.Errorf("cluster node AUTH over TLS = %q", got)
	}
}
