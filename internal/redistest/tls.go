package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Certs are the PEM files of a throwaway certificate authority and of one
// server certificate it signed for 127.0.0.1 (an IP SAN), usable by every
// redis-server of a test, as server and as client (replication, the
// cluster bus, a sentinel's connections).
type Certs struct {
	CAFile, CertFile, KeyFile string
}

// NewCerts generates a CA and a server certificate valid for an hour, in a
// temporary directory of tb's.
func NewCerts(tb testing.TB) *Certs {
	tb.Helper()
	dir := tb.TempDir()
	c := &Certs{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	if err := c.generate(); err != nil {
		tb.Fatalf("redistest: generate certificates: %v", err)
	}
	return c
}

// generate writes the CA certificate, the server certificate and its key.
func (c *Certs) generate() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Client auth too: redis-server presents the same certificate
		// when it dials (replicas, the cluster bus, sentinels).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{c.CAFile, "CERTIFICATE", caDER}, {c.CertFile, "CERTIFICATE", leafDER}, {c.KeyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Secure says how a server started by StartSecure and its siblings is
// locked down. The zero value adds nothing.
type Secure struct {
	// Certs, when set, adds a TLS listener on a second free port, with
	// --tls-auth-clients no (clients need no certificate of their own).
	Certs *Certs
	// User and Password, when User is set, create an ACL user with every
	// permission, and restrict the default (unauthenticated) user to what
	// the harness itself needs: PING, INFO and CLUSTER INFO.
	User, Password string
}

// SecureServer is a redis-server started by StartSecure, StartSecureSentinel
// or StartSecureCluster.
type SecureServer struct {
	*Server
	// ClientAddr is where a client under test connects: the TLS port with
	// Certs, else Addr. The plain port at Addr stays open for the
	// harness's own PING and INFO, which the default user may still run.
	ClientAddr string
}

// StartSecure runs redis-server as Start does, with TLS and an ACL user as
// sec says. args are appended to the command line.
func StartSecure(tb testing.TB, sec Secure, args ...string) *SecureServer {
	tb.Helper()
	return startSecure(tb, sec, &Server{bin: lookRedisServer(tb), dir: tb.TempDir()}, args)
}

// StartSecureSentinel runs a sentinel monitoring master under name, as
// StartSentinel does, but reaching master at its ClientAddr, over TLS and
// as sec's user when sec says so, and itself serving TLS and the ACL user.
func StartSecureSentinel(tb testing.TB, name string, master *SecureServer, sec Secure) *SecureServer {
	tb.Helper()
	host, port, _ := net.SplitHostPort(master.ClientAddr)
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n",
		name, host, port, sentinelDownAfter, sentinelFailoverTimeout)
	if sec.User != "" {
		text += fmt.Sprintf("sentinel auth-user %s %s\nsentinel auth-pass %s %s\n", name, sec.User, name, sec.Password)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		tb.Fatalf("redistest: write %s: %v", conf, err)
	}
	args := []string{"--sentinel"}
	if sec.Certs != nil {
		args = append(args, "--tls-replication", "yes") // how a sentinel dials masters over TLS
	}
	return startSecure(tb, sec, &Server{bin: lookRedisServer(tb), dir: dir, conf: conf}, args)
}

// StartSecureCluster runs n cluster masters (n >= 3) as StartCluster does,
// with sec's TLS (the cluster bus too) and ACL user, and joins them over
// their client addresses.
func StartSecureCluster(tb testing.TB, n int, sec Secure) []*SecureServer {
	tb.Helper()
	bin := lookRedisServer(tb)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redistest: redis-cli not found in PATH (install redis-tools): %v", err)
	}
	args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}
	if sec.Certs != nil {
		args = append(args, "--tls-cluster", "yes")
	}
	var create []string
	if sec.Certs != nil {
		create = append(create, "--tls", "--cacert", sec.Certs.CAFile)
	}
	if sec.User != "" {
		create = append(create, "--user", sec.User, "--pass", sec.Password, "--no-auth-warning")
	}
	create = append(create, "--cluster", "create")
	nodes := make([]*SecureServer, n)
	for i := range nodes {
		nodes[i] = startSecure(tb, sec, &Server{bin: bin, dir: tb.TempDir(), cluster: true}, args)
		create = append(create, nodes[i].ClientAddr)
	}
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	for _, s := range nodes {
		waitInfo(tb, s.Addr, "cluster", "cluster_state:ok", startTimeout)
	}
	return nodes
}

// startSecure adds sec's arguments to s and starts it.
func startSecure(tb testing.TB, sec Secure, s *Server, args []string) *SecureServer {
	tb.Helper()
	var secArgs []string
	tlsAddr := ""
	if sec.Certs != nil {
		// The TLS port is fixed for the server's life, so Restart keeps
		// it; like the plain port it could be taken before redis-server
		// binds it, which fails the test with redis-server's log.
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: find a free port: %v", err)
		}
		tlsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		secArgs = append(secArgs,
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", sec.Certs.CertFile,
			"--tls-key-file", sec.Certs.KeyFile,
			"--tls-ca-cert-file", sec.Certs.CAFile,
			"--tls-auth-clients", "no",
		)
	}
	if sec.User != "" {
		secArgs = append(secArgs,
			"--user", sec.User, "on", ">"+sec.Password, "~*", "&*", "+@all",
			"--user", "default", "on", "nopass", "-@all", "+ping", "+info",
		)
		if s.cluster {
			// waitInfo asks CLUSTER INFO, a command sentinels and
			// plain servers do not know.
			secArgs = append(secArgs, "+cluster|info")
		}
	}
	s.args = append(append(secArgs, args...), s.args...)
	s = startServer(tb, s)
	out := &SecureServer{Server: s, ClientAddr: s.Addr}
	if tlsAddr != "" {
		out.ClientAddr = tlsAddr
	}
	return out
}

// lookRedisServer finds redis-server or fails tb.
func lookRedisServer(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found in PATH (install redis-server, e.g. apt-get install redis-server): %v", err)
	}
	return bin
}
