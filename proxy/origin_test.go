package proxy

import "testing"

func TestCheckOrigin(t *testing.T) {
	cases := []struct {
		name    string
		allowed []string
		origin  string
		host    string
		ok      bool
	}{
		{"no origin header is not a browser", nil, "", "app.example.com", true},
		{"same host", nil, "https://app.example.com", "app.example.com", true},
		{"same host, scheme ignored", nil, "http://app.example.com", "app.example.com", true},
		{"same host and port", nil, "http://localhost:8080", "localhost:8080", true},
		{"host case", nil, "https://APP.example.com", "app.example.com", true},
		{"other port", nil, "http://localhost:3000", "localhost:8080", false},
		{"other host", nil, "https://evil.com", "app.example.com", false},
		{"garbage origin", nil, "null", "app.example.com", false},
		{"exact entry", []string{"https://app.example.com"}, "https://app.example.com", "cable.example.com", true},
		{"exact entry, default port spelled", []string{"https://app.example.com:443"}, "https://app.example.com", "x", true},
		{"exact entry, other scheme", []string{"https://app.example.com"}, "http://app.example.com", "x", false},
		{"exact entry, other port", []string{"https://app.example.com"}, "https://app.example.com:8443", "x", false},
		{"subdomain entry", []string{"https://*.example.com"}, "https://a.example.com", "x", true},
		{"deep subdomain", []string{"https://*.example.com"}, "https://a.b.example.com", "x", true},
		{"subdomain entry is not the apex", []string{"https://*.example.com"}, "https://example.com", "x", false},
		{"suffix bug: evilexample", []string{"https://*.example.com"}, "https://evilexample.com", "x", false},
		{"suffix bug: example.com.evil", []string{"https://*.example.com"}, "https://example.com.evil.io", "x", false},
		{"list: second matches", []string{"https://a.io", "https://b.io"}, "https://b.io", "x", true},
		{"star allows all", []string{"*"}, "https://anything.test", "x", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rules, err := parseOrigins(c.allowed)
			if err != nil {
				t.Fatal(err)
			}
			err = checkOrigin(rules, c.origin, c.host)
			if (err == nil) != c.ok {
				t.Errorf("checkOrigin(%q, host %q) = %v, want ok=%v", c.origin, c.host, err, c.ok)
			}
		})
	}
}

func TestParseOriginsRejects(t *testing.T) {
	for _, bad := range []string{"example.com", "https://", "https://*example.com", "https://a.*.com", "https://a.com/path"} {
		if _, err := parseOrigins([]string{bad}); err == nil {
			t.Errorf("parseOrigins(%q) accepted it", bad)
		}
	}
}
