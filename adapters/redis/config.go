package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Defaults for the tunables of Config.
const (
	DefaultProbeInterval = time.Second
	DefaultProbeTimeout  = 3 * time.Second
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 5 * time.Second
)

// Config configures the Redis broker. The env tags lack the CABLECAR_
// prefix, which the command adds. The untagged tunables are for tests and
// embedding; a zero value means the default.
type Config struct {
	// URL is the Redis server: redis://[user:password@]host:port[/db], or
	// rediss:// for TLS; go-redis query options such as dial_timeout are
	// accepted. The database number does not matter for pub/sub. Exactly
	// one of URL, Sentinels and ClusterAddrs must be set (default none).
	URL string `env:"REDIS_URL"`
	// Sentinels are the Redis Sentinel addresses, host:port, comma
	// separated in the environment. With MasterName they select Sentinel
	// mode: go-redis's failover client asks the sentinels for the current
	// master and follows failovers (default none).
	Sentinels []string `env:"REDIS_SENTINELS"`
	// MasterName is the master's name in the sentinels' configuration;
	// required with Sentinels (default none).
	MasterName string `env:"REDIS_MASTER_NAME"`
	// ClusterAddrs are seed addresses of a Redis Cluster, host:port, comma
	// separated in the environment; go-redis's cluster client discovers the
	// rest. Classic PUBLISH reaches a SUBSCRIBE on any node, which is what
	// Rails relies on (default none).
	ClusterAddrs []string `env:"REDIS_CLUSTER_ADDRS"`
	// Password authenticates to the Redis master (Sentinel mode) or the
	// cluster nodes. With URL, put the password in the URL instead
	// (default none).
	Password string `env:"REDIS_PASSWORD"`
	// Username is the Redis 6 ACL user for the master (Sentinel mode) or
	// the cluster nodes, with Password. With URL, put the user in the URL
	// instead (default none: Redis's default user).
	Username string `env:"REDIS_USERNAME"`
	// SentinelPassword authenticates to the sentinels themselves, when
	// they require it (default none).
	SentinelPassword string `env:"REDIS_SENTINEL_PASSWORD"`
	// SentinelUsername is the ACL user for the sentinels themselves, with
	// SentinelPassword (default none).
	SentinelUsername string `env:"REDIS_SENTINEL_USERNAME"`
	// TLS turns on TLS for Sentinel and Cluster mode: to the sentinels and
	// the master alike, or to every cluster node. The certificate is
	// always verified, against the host of the address dialled. With URL,
	// use a rediss:// URL instead (default false).
	TLS bool `env:"REDIS_TLS"`
	// TLSCAFile is a PEM file of the CA certificates that verify the
	// servers, for a private CA; it applies to rediss:// URLs and to TLS.
	// Read once, by New (default none: the system's roots).
	TLSCAFile string `env:"REDIS_TLS_CA_FILE"`
	// ShardedPubSub switches to Redis 7 sharded pub/sub: SSUBSCRIBE to
	// listen and SPUBLISH to publish. A sharded channel lives only on the
	// shard that owns its slot, so publishers must use SPUBLISH too; Rails'
	// own adapter does not. With ClusterAddrs the broker keeps one
	// subscriber connection per master and follows slot moves (default
	// false: classic PUBLISH/SUBSCRIBE).
	ShardedPubSub bool `env:"REDIS_SHARDED_PUBSUB"`
	// ChannelPrefix is Rails' cable.yml channel_prefix. A stream's Redis
	// channel is ChannelPrefix + ":" + stream, or the stream alone when the
	// prefix is empty (default "", no prefix).
	ChannelPrefix string `env:"CHANNEL_PREFIX"`

	// ProbeInterval is how often a probe is published on this node's
	// private channel to prove that pub/sub delivery works (default 1s).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe may take to come back before the
	// broker reports itself unhealthy and replaces its subscriber
	// connection (default 3s).
	ProbeTimeout time.Duration
	// BackoffMin is the wait before the first reconnect attempt; it doubles
	// after each failed attempt, with jitter (default 100ms).
	BackoffMin time.Duration
	// BackoffMax caps the wait between reconnect attempts (default 5s).
	BackoffMax time.Duration
}

// Configured reports whether c names a Redis at all (URL, Sentinels or
// ClusterAddrs set), i.e. whether the command should use this broker
// rather than the in-memory one. It does not validate c; New does.
func (c Config) Configured() bool {
	return c.URL != "" || len(cleanList(c.Sentinels)) > 0 || len(cleanList(c.ClusterAddrs)) > 0
}

// withDefaults fills every zero tunable with its default.
func (c Config) withDefaults() Config {
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	return c
}

// clientOptions are the go-redis options of one mode: simple for URL,
// universal (Addrs, and MasterName or IsClusterMode) for Sentinel and
// Cluster. Exactly one is set.
type clientOptions struct {
	simple    *goredis.Options
	universal *goredis.UniversalOptions
}

// options checks c (defaults applied) and returns go-redis options for it.
// Every problem is reported at once (errors.Join drops the nil errors
// appended along the way).
func (c Config) options() (clientOptions, error) {
	var errs []error
	sentinels, cluster := cleanList(c.Sentinels), cleanList(c.ClusterAddrs)
	set := 0
	for _, ok := range []bool{c.URL != "", len(sentinels) > 0, len(cluster) > 0} {
		if ok {
			set++
		}
	}
	var opts clientOptions
	switch {
	case set == 0:
		errs = append(errs, errors.New("CABLECAR_REDIS_URL is not set (or CABLECAR_REDIS_SENTINELS or CABLECAR_REDIS_CLUSTER_ADDRS)"))
	case set > 1:
		errs = append(errs, errors.New("set only one of CABLECAR_REDIS_URL, CABLECAR_REDIS_SENTINELS and CABLECAR_REDIS_CLUSTER_ADDRS"))
	case c.URL != "":
		var err error
		opts.simple, err = c.urlOptions()
		errs = append(errs, err)
	case len(sentinels) > 0:
		errs = append(errs, checkAddrs("CABLECAR_REDIS_SENTINELS", sentinels)...)
		tlsConfig, err := c.tlsConfig()
		errs = append(errs, err)
		opts.universal = &goredis.UniversalOptions{
			Addrs:            sentinels,
			MasterName:       c.MasterName,
			Username:         c.Username,
			Password:         c.Password,
			SentinelUsername: c.SentinelUsername,
			SentinelPassword: c.SentinelPassword,
			TLSConfig:        tlsConfig,
		}
	default:
		errs = append(errs, checkAddrs("CABLECAR_REDIS_CLUSTER_ADDRS", cluster)...)
		tlsConfig, err := c.tlsConfig()
		errs = append(errs, err)
		opts.universal = &goredis.UniversalOptions{
			Addrs:         cluster,
			IsClusterMode: true,
			Username:      c.Username,
			Password:      c.Password,
			TLSConfig:     tlsConfig,
		}
	}
	if len(sentinels) > 0 && c.MasterName == "" {
		errs = append(errs, errors.New("CABLECAR_REDIS_MASTER_NAME is not set (required with CABLECAR_REDIS_SENTINELS)"))
	}
	if len(sentinels) == 0 && c.MasterName != "" {
		errs = append(errs, errors.New("CABLECAR_REDIS_MASTER_NAME: only used with CABLECAR_REDIS_SENTINELS"))
	}
	if len(sentinels) == 0 && c.SentinelPassword != "" {
		errs = append(errs, errors.New("CABLECAR_REDIS_SENTINEL_PASSWORD: only used with CABLECAR_REDIS_SENTINELS"))
	}
	if len(sentinels) == 0 && c.SentinelUsername != "" {
		errs = append(errs, errors.New("CABLECAR_REDIS_SENTINEL_USERNAME: only used with CABLECAR_REDIS_SENTINELS"))
	}
	if c.ProbeInterval < 0 || c.ProbeTimeout < 0 {
		errs = append(errs, errors.New("redis: probe interval and timeout must not be negative"))
	}
	if c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("redis: backoff %v..%v: want 0 <= min <= max", c.BackoffMin, c.BackoffMax))
	}
	if err := errors.Join(errs...); err != nil {
		return clientOptions{}, err
	}
	return opts, nil
}

// newClient names the connections and limits dial retries as New
// describes, then returns go-redis's own client for the mode: a plain client
// for URL, a failover client for Sentinel, a cluster client for Cluster.
func (o clientOptions) newClient(name string) goredis.UniversalClient {
	if o.simple != nil {
		if o.simple.ClientName == "" {
			o.simple.ClientName = name
		}
		if o.simple.DialerRetries == 0 {
			o.simple.DialerRetries = 1
		}
		return goredis.NewClient(o.simple)
	}
	u := o.universal
	u.ClientName, u.DialerRetries = name, 1
	if u.IsClusterMode {
		return goredis.NewClusterClient(u.Cluster())
	}
	return goredis.NewFailoverClient(u.Failover())
}

// NewClient checks c and returns go-redis's client for its mode, with the
// broker's options (topology, ACL users, TLS) and connections named name in
// CLIENT LIST. It is for tools, such as `cablecar doctor` and `cablecar
// trace`, that must reach Redis exactly as the broker would. The client is
// a *goredis.Client for URL and Sentinel mode and a *goredis.ClusterClient
// for Cluster mode. The caller closes it.
func (c Config) NewClient(name string) (goredis.UniversalClient, error) {
	opts, err := c.withDefaults().options()
	if err != nil {
		return nil, err
	}
	return opts.newClient(name), nil
}

// SentinelMaster asks the sentinels, in order, for the address of the
// master named MasterName, as the failover client does on each dial, and
// returns the first answer. It uses the sentinels' user, password and TLS
// settings. c must be in Sentinel mode.
func (c Config) SentinelMaster(ctx context.Context) (string, error) {
	opts, err := c.withDefaults().options()
	if err != nil {
		return "", err
	}
	if opts.universal == nil || opts.universal.MasterName == "" {
		return "", errors.New("redis: not in Sentinel mode (CABLECAR_REDIS_SENTINELS)")
	}
	fo := opts.universal.Failover()
	var errs []error
	for _, addr := range fo.SentinelAddrs {
		s := goredis.NewSentinelClient(&goredis.Options{
			Addr:          addr,
			Username:      fo.SentinelUsername,
			Password:      fo.SentinelPassword,
			TLSConfig:     fo.TLSConfig,
			MaxRetries:    -1,
			DialerRetries: 1,
		})
		hostPort, err := s.GetMasterAddrByName(ctx, fo.MasterName).Result()
		_ = s.Close()
		if err == nil && len(hostPort) == 2 {
			return net.JoinHostPort(hostPort[0], hostPort[1]), nil
		}
		switch {
		case errors.Is(err, goredis.Nil):
			err = errors.New("it monitors no master of that name")
		case err == nil:
			err = fmt.Errorf("unexpected reply %q", hostPort)
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", addr, err))
	}
	return "", fmt.Errorf("redis: no sentinel named the master %q: %w", fo.MasterName, errors.Join(errs...))
}

// urlOptions parses URL and applies TLSCAFile to a rediss:// URL. Username,
// Password and TLS belong in the URL, so setting them as well is an error.
func (c Config) urlOptions() (*goredis.Options, error) {
	var errs []error
	opts, err := goredis.ParseURL(c.URL)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep
		// only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		errs = append(errs, fmt.Errorf("CABLECAR_REDIS_URL: %w (want redis://[user:password@]host:port[/db] or rediss://…)", err))
	}
	if c.Password != "" {
		errs = append(errs, errors.New("CABLECAR_REDIS_PASSWORD: not used with CABLECAR_REDIS_URL; put the password in the URL"))
	}
	if c.Username != "" {
		errs = append(errs, errors.New("CABLECAR_REDIS_USERNAME: not used with CABLECAR_REDIS_URL; put the user in the URL (redis://user:password@host:port)"))
	}
	if c.TLS {
		errs = append(errs, errors.New("CABLECAR_REDIS_TLS: not used with CABLECAR_REDIS_URL; use a rediss:// URL for TLS"))
	}
	if opts != nil && opts.TLSConfig != nil && opts.TLSConfig.InsecureSkipVerify {
		// go-redis honours ?skip_verify=true; cablecar promises verified
		// certificates, so a URL cannot turn that off unnoticed.
		errs = append(errs, errors.New("CABLECAR_REDIS_URL: skip_verify is refused: Redis's certificate is always verified; "+
			"for a private CA set CABLECAR_REDIS_TLS_CA_FILE"))
	}
	if c.TLSCAFile != "" && opts != nil {
		if opts.TLSConfig == nil {
			errs = append(errs, errors.New("CABLECAR_REDIS_TLS_CA_FILE: CABLECAR_REDIS_URL is redis:// (no TLS); use a rediss:// URL"))
		} else if pool, err := c.caPool(); err != nil {
			errs = append(errs, err)
		} else {
			opts.TLSConfig.RootCAs = pool
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return opts, nil
}

// tlsConfig returns the TLS settings of Sentinel and Cluster mode: nil
// without TLS. ServerName stays empty on purpose: crypto/tls then verifies
// each server against the host of the address dialled, which is right for
// every sentinel, every master a sentinel names and every cluster node.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		if c.TLSCAFile != "" {
			return nil, errors.New("CABLECAR_REDIS_TLS_CA_FILE: only used with CABLECAR_REDIS_TLS=true or a rediss:// CABLECAR_REDIS_URL")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		pool, err := c.caPool()
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// caPool reads TLSCAFile into a pool of its own: with a private CA, the
// system's roots are not wanted.
func (c Config) caPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(c.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("CABLECAR_REDIS_TLS_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CABLECAR_REDIS_TLS_CA_FILE: %s holds no PEM certificate", c.TLSCAFile)
	}
	return pool, nil
}

// cleanList trims the entries of a comma-separated setting and drops empty
// ones.
func cleanList(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkAddrs reports addresses that are not host:port, naming the variable.
func checkAddrs(name string, addrs []string) []error {
	var errs []error
	for _, a := range addrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", name, a))
		}
	}
	return errs
}
