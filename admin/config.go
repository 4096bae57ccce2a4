package admin

// Config holds the admin listener's settings; env tags carry no prefix
// (cmd/cablecar reads CABLECAR_<tag>).
type Config struct {
	// Addr is where the admin listener serves; "off" disables it. Keep it
	// on loopback or a private network (default "127.0.0.1:9090").
	Addr string `env:"ADMIN_ADDR"`
	// Token, when set, must accompany every admin request as
	// "Authorization: Bearer …" or ?admin_token=… (default: none).
	Token string `env:"ADMIN_TOKEN"`
}

// DefaultAddr is the admin listener's default address.
const DefaultAddr = "127.0.0.1:9090"

// Enabled reports whether the listener should run.
func (c Config) Enabled() bool { return c.Addr != "off" }

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	return c
}
