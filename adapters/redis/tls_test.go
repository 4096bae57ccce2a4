package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// The ACL user of the TLS tests' servers.
const (
	aclUser     = "alice"
	aclPassword = "s3cret-not-shown"
)

// secure is TLS with a fresh CA plus the ACL user.
func secure(t *testing.T) redistest.Secure {
	t.Helper()
	return redistest.Secure{Certs: redistest.NewCerts(t), User: aclUser, Password: aclPassword}
}

// tlsClient returns a plain go-redis client for a job publishing over TLS
// as the ACL user, closed at cleanup.
func tlsClient(t *testing.T, sec redistest.Secure, addr string) *goredis.Client {
	t.Helper()
	pem, err := os.ReadFile(sec.Certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := goredis.NewClient(&goredis.Options{
		Addr: addr, Username: sec.User, Password: sec.Password, MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// checkDelivers subscribes stream on a running broker, and checks that a
// message a job publishes with pub, and one the broker publishes itself,
// both arrive.
func checkDelivers(t *testing.T, b *Broker, r *brokertest.Recorder, pub goredis.UniversalClient, prefix, stream string) {
	t.Helper()
	b.Subscribe(stream)
	brokertest.WaitFor(t, settle, "active("+stream+")", func() bool { return r.Actives(stream) == 1 })
	waitHealthy(t, b)
	if err := pub.Publish(context.Background(), prefix+":"+stream, "from a job").Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, stream, 1, settle); string(got) != "from a job" {
		t.Errorf("job's message: got %q", got)
	}
	if err := b.Publish(context.Background(), stream, []byte("via broker")); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, stream, 2, settle); string(got) != "via broker" {
		t.Errorf("broker Publish: got %q", got)
	}
}

// TestTLSURL connects with rediss://user:password@ to a TLS-only client
// port and a private CA.
func TestTLSURL(t *testing.T) {
	brokertest.CheckGoroutines(t)
	sec := secure(t)
	srv := redistest.StartSecure(t, sec)
	prefix := redistest.UniquePrefix(t)
	b, _ := newBrokerConfig(t, Config{
		URL:           fmt.Sprintf("rediss://%s:%s@%s/0", aclUser, aclPassword, srv.ClientAddr),
		TLSCAFile:     sec.Certs.CAFile,
		ChannelPrefix: prefix,
	})
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	checkDelivers(t, b, r, tlsClient(t, sec, srv.ClientAddr), prefix, "doc")
}

// TestTLSURLFailures checks what Health says about a wrong password and an
// unknown CA, and that neither the password nor the user's secret reaches
// Health or the log.
func TestTLSURLFailures(t *testing.T) {
	brokertest.CheckGoroutines(t)
	sec := secure(t)
	srv := redistest.StartSecure(t, sec)
	const wrong = "wr0ng-pw-not-shown"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"wrong password", Config{URL: fmt.Sprintf("rediss://%s:%s@%s/0", aclUser, wrong, srv.ClientAddr), TLSCAFile: sec.Certs.CAFile},
			"WRONGPASS"},
		{"no CA", Config{URL: fmt.Sprintf("rediss://%s:%s@%s/0", aclUser, aclPassword, srv.ClientAddr)},
			"x509: certificate signed by unknown authority"},
		{"plain redis:// to the TLS port", Config{URL: fmt.Sprintf("redis://%s:%s@%s/0", aclUser, aclPassword, srv.ClientAddr)},
			"redis: not connected yet: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ChannelPrefix = redistest.UniquePrefix(t)
			b, logs := newBrokerConfig(t, tc.cfg)
			r := brokertest.NewRecorder(t)
			stop := r.Start(t, b)
			defer stop()
			var health error
			brokertest.WaitFor(t, settle, "Health to say "+tc.want, func() bool {
				health = b.Health(context.Background())
				return health != nil && strings.Contains(health.Error(), tc.want)
			})
			stop()
			for _, secret := range []string{wrong, aclPassword} {
				if strings.Contains(health.Error(), secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("a password shows: Health %q, log:\n%s", health, logs)
				}
			}
			t.Logf("Health: %v", health)
		})
	}
}

// TestTLSConfigErrors checks the rules of the new settings, and that no
// error repeats a password from the URL.
func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const url = "rediss://alice:" + aclPassword + "@localhost:6380/0"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"skip_verify in URL", Config{URL: url + "?skip_verify=true"}, "CABLECAR_REDIS_URL: skip_verify is refused"},
		{"TLS with URL", Config{URL: url, TLS: true}, "CABLECAR_REDIS_TLS: not used with CABLECAR_REDIS_URL; use a rediss:// URL for TLS"},
		{"username with URL", Config{URL: url, Username: "bob"}, "CABLECAR_REDIS_USERNAME: not used with CABLECAR_REDIS_URL; put the user in the URL"},
		{"CA with redis://", Config{URL: "redis://localhost:6379", TLSCAFile: notPEM}, "CABLECAR_REDIS_TLS_CA_FILE: CABLECAR_REDIS_URL is redis:// (no TLS); use a rediss:// URL"},
		{"CA missing", Config{URL: url, TLSCAFile: filepath.Join(dir, "missing.pem")}, "CABLECAR_REDIS_TLS_CA_FILE: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{"CA not PEM", Config{ClusterAddrs: []string{"a:1"}, TLS: true, TLSCAFile: notPEM}, "CABLECAR_REDIS_TLS_CA_FILE: " + notPEM + " holds no PEM certificate"},
		{"CA without TLS", Config{Sentinels: []string{"s:26379"}, MasterName: "m", TLSCAFile: notPEM}, "CABLECAR_REDIS_TLS_CA_FILE: only used with CABLECAR_REDIS_TLS=true or a rediss://"},
		{"sentinel username without sentinels", Config{ClusterAddrs: []string{"a:1"}, SentinelUsername: "s"}, "CABLECAR_REDIS_SENTINEL_USERNAME: only used with CABLECAR_REDIS_SENTINELS"},
	} {
		_, err := New(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), aclPassword) {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
		if _, err := tc.cfg.NewClient("x"); err == nil {
			t.Errorf("%s: NewClient accepted what New refuses", tc.name)
		}
	}
}

// TestSentinelTLSACL runs a TLS master and sentinel, both with an ACL user
// (the default user may only PING), and checks the broker finds the master
// through the sentinel and delivers.
func TestSentinelTLSACL(t *testing.T) {
	brokertest.CheckGoroutines(t)
	const masterName = "cablecar-tls"
	sec := secure(t)
	master := redistest.StartSecure(t, sec)
	sentinel := redistest.StartSecureSentinel(t, masterName, master, sec)
	cfg := Config{
		Sentinels: []string{sentinel.ClientAddr}, MasterName: masterName,
		Username: aclUser, Password: aclPassword,
		SentinelUsername: aclUser, SentinelPassword: aclPassword,
		TLS: true, TLSCAFile: sec.Certs.CAFile,
		ChannelPrefix: redistest.UniquePrefix(t),
	}
	addr, err := cfg.SentinelMaster(context.Background())
	if err != nil || addr != master.ClientAddr {
		t.Fatalf("SentinelMaster = %q, %v; want %s", addr, err, master.ClientAddr)
	}
	b, _ := newBrokerConfig(t, cfg)
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	checkDelivers(t, b, r, tlsClient(t, sec, master.ClientAddr), cfg.ChannelPrefix, "doc")

	// A wrong sentinel password is named, without the password.
	bad := cfg
	bad.SentinelPassword = "wr0ng-pw-not-shown"
	if _, err := bad.SentinelMaster(context.Background()); err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), bad.SentinelPassword) {
		t.Errorf("SentinelMaster with a wrong password = %v", err)
	}
}

// startSecureClusterBroker runs a three-master cluster with TLS on the
// client ports and the bus, and a running broker that reaches it as the
// ACL user, in sharded mode or not.
func startSecureClusterBroker(t *testing.T, sharded bool) (sec redistest.Secure, nodes []*redistest.SecureServer, prefix string, b *Broker, r *brokertest.Recorder) {
	t.Helper()
	sec = secure(t)
	nodes = redistest.StartSecureCluster(t, 3, sec)
	prefix = redistest.UniquePrefix(t)
	b, _ = newBrokerConfig(t, Config{
		ClusterAddrs: []string{nodes[0].ClientAddr},
		Username:     aclUser, Password: aclPassword,
		TLS: true, TLSCAFile: sec.Certs.CAFile,
		ShardedPubSub: sharded,
		ChannelPrefix: prefix,
	})
	r = brokertest.NewRecorder(t)
	t.Cleanup(r.Start(t, b))
	return sec, nodes, prefix, b, r
}

// TestClusterTLSACL runs a three-master cluster with TLS on the client
// ports and the cluster bus and an ACL user, and checks that the broker
// hears a job publishing on every node.
func TestClusterTLSACL(t *testing.T) {
	brokertest.CheckGoroutines(t)
	sec, nodes, prefix, b, r := startSecureClusterBroker(t, false)
	checkDelivers(t, b, r, tlsClient(t, sec, nodes[1].ClientAddr), prefix, "doc")
	// Classic PUBLISH on any node reaches the one subscriber connection.
	for i, n := range nodes {
		if err := tlsClient(t, sec, n.ClientAddr).Publish(context.Background(), prefix+":doc", fmt.Sprintf("node %d", i)).Err(); err != nil {
			t.Fatal(err)
		}
		if got := r.WaitMessage(t, "doc", 3+i, settle); string(got) != fmt.Sprintf("node %d", i) {
			t.Errorf("published on node %d: got %q", i, got)
		}
	}
}

// TestClusterShardedTLSACL checks that sharded pub/sub's connection per
// master gets the same TLS and ACL options.
func TestClusterShardedTLSACL(t *testing.T) {
	brokertest.CheckGoroutines(t)
	_, _, _, b, r := startSecureClusterBroker(t, true)
	for i := range 6 {
		s := fmt.Sprintf("doc-%d", i)
		b.Subscribe(s)
		brokertest.WaitFor(t, settle, "active("+s+")", func() bool { return r.Actives(s) == 1 })
	}
	waitHealthy(t, b)
	for i := range 6 {
		s := fmt.Sprintf("doc-%d", i)
		if err := b.Publish(context.Background(), s, []byte("sharded "+s)); err != nil {
			t.Fatal(err)
		}
		if got := r.WaitMessage(t, s, 1, settle); string(got) != "sharded "+s {
			t.Errorf("%s: got %q", s, got)
		}
	}
}
