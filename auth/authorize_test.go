package auth

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// decodeParams decodes an identifier as the proxy does: UseNumber.
func decodeParams(t testing.TB, identifier string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(identifier)))
	dec.UseNumber()
	var p map[string]any
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode identifier %s: %v", identifier, err)
	}
	return p
}

// identity builds a verified identity with the given claims, as
// Authenticate would (arrays as []any).
func identity(t testing.TB, claimsJSON string) *Identity {
	t.Helper()
	c := decodeParams(t, claimsJSON)
	sub, _ := c["sub"].(string)
	return &Identity{Subject: sub, Claims: c}
}

const testRoutes = `
DocumentChannel={channel}:{gid:Document:params.id}
NotificationsChannel={channel}:{gid:User:claims.sub}
public:LobbyChannel={channel}:{params.room}
Chat::RoomChannel={channel}:{params.room},{channel}:{params.room}:typing,{channel}:{params.room}
StatusChannel=status;OrgChannel={channel}:{claims.org}:{params.team}
FlagChannel={channel}:{params.flag}
RoomChannel={gid:Chat::Room:params.id}
`

func TestAuthorizeRoutes(t *testing.T) {
	a := newAuth(t, Config{JWTSecret: testSecret, GIDApp: "myapp", Routes: testRoutes})
	var (
		docToken   = identity(t, `{"sub":"42","streams":["document:*"]}`)
		chatToken  = identity(t, `{"sub":"42","streams":["chat:*"]}`)
		noStreams  = identity(t, `{"sub":"42"}`)
		intSub     = identity(t, `{"sub":42}`)
		strStreams = identity(t, `{"sub":"1","streams":"document:Z2l*, chat:room:lobby"}`)
		mixed      = identity(t, `{"sub":"1","streams":[1,{"a":"b"},null,"chat:room:lobby*"]}`)
		everything = identity(t, `{"sub":"1","streams":["*"],"org":"acme"}`)
		orgToken   = identity(t, `{"sub":"1","org":"acme","streams":["org:acme:*"]}`)
		anonymous  = &Identity{Anonymous: true}
	)
	tests := []struct {
		name       string
		id         *Identity
		identifier string
		want       []string
		reason     string
		msg        string // substring of the error message
	}{
		// The examples.
		{"document allowed", docToken, `{"channel":"DocumentChannel","id":123}`,
			[]string{"document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"}, "", ""},
		{"document denied", chatToken, `{"channel":"DocumentChannel","id":123}`, nil, "stream_forbidden",
			`channel "DocumentChannel": stream "document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz" not allowed by token claim "streams"`},
		{"document without streams claim", noStreams, `{"channel":"DocumentChannel","id":123}`, nil, "stream_forbidden", "absent, empty"},
		{"document anonymous", anonymous, `{"channel":"DocumentChannel","id":123}`, nil, "stream_forbidden", "anonymous"},
		{"document nil identity", nil, `{"channel":"DocumentChannel","id":123}`, nil, "stream_forbidden", "anonymous"},
		{"document string id", docToken, `{"channel":"DocumentChannel","id":"123"}`,
			[]string{"document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"}, "", ""},
		{"notifications without streams claim", noStreams, `{"channel":"NotificationsChannel"}`,
			[]string{"notifications:Z2lkOi8vbXlhcHAvVXNlci80Mg"}, "", ""},
		{"notifications integer sub", intSub, `{"channel":"NotificationsChannel"}`,
			[]string{"notifications:Z2lkOi8vbXlhcHAvVXNlci80Mg"}, "", ""},
		{"notifications ignore params", noStreams, `{"channel":"NotificationsChannel","sub":"99"}`,
			[]string{"notifications:Z2lkOi8vbXlhcHAvVXNlci80Mg"}, "", ""},
		{"notifications anonymous", anonymous, `{"channel":"NotificationsChannel"}`, nil, "missing_param",
			`claim "sub" (anonymous connections have no claims)`},
		// public: rules skip the streams claim, not the rendering rules.
		{"public anonymous", anonymous, `{"channel":"LobbyChannel","room":"main"}`, []string{"lobby:main"}, "", ""},
		{"public with token", noStreams, `{"channel":"LobbyChannel","room":"main"}`, []string{"lobby:main"}, "", ""},
		{"public missing param", anonymous, `{"channel":"LobbyChannel"}`, nil, "missing_param", `identifier param "room"`},
		{"no params route anonymous", anonymous, `{"channel":"StatusChannel"}`, []string{"status"}, "", ""},
		// Several templates: duplicates dropped, order kept, all must match.
		{"dedup", chatToken, `{"channel":"Chat::RoomChannel","room":"lobby"}`,
			[]string{"chat:room:lobby", "chat:room:lobby:typing"}, "", ""},
		{"every stream must match", strStreams, `{"channel":"Chat::RoomChannel","room":"lobby"}`, nil, "stream_forbidden",
			`stream "chat:room:lobby:typing"`},
		{"string streams claim", strStreams, `{"channel":"DocumentChannel","id":123}`,
			[]string{"document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"}, "", ""},
		{"non-string patterns ignored", mixed, `{"channel":"Chat::RoomChannel","room":"lobby"}`,
			[]string{"chat:room:lobby", "chat:room:lobby:typing"}, "", ""},
		{"claims and params", orgToken, `{"channel":"OrgChannel","team":"red"}`, []string{"org:acme:red"}, "", ""},
		{"claims and params other org", everything, `{"channel":"OrgChannel","team":"red"}`, []string{"org:acme:red"}, "", ""},
		{"namespaced gid model", everything, `{"channel":"RoomChannel","id":7}`,
			[]string{"Z2lkOi8vbXlhcHAvQ2hhdDo6Um9vbS83"}, "", ""},
		// Rendering.
		{"true", everything, `{"channel":"FlagChannel","flag":true}`, []string{"flag:true"}, "", ""},
		{"false", everything, `{"channel":"FlagChannel","flag":false}`, []string{"flag:false"}, "", ""},
		{"negative integer", everything, `{"channel":"FlagChannel","flag":-5}`, []string{"flag:-5"}, "", ""},
		{"negative zero", everything, `{"channel":"FlagChannel","flag":-0}`, []string{"flag:0"}, "", ""},
		{"big integer", everything, `{"channel":"FlagChannel","flag":123456789012345678901234567890}`,
			[]string{"flag:123456789012345678901234567890"}, "", ""},
		{"float", everything, `{"channel":"FlagChannel","flag":1.5}`, nil, "unrenderable_param", `identifier param "flag"`},
		{"float without fraction", everything, `{"channel":"FlagChannel","flag":1.0}`, nil, "unrenderable_param", ""},
		{"exponent", everything, `{"channel":"FlagChannel","flag":1e2}`, nil, "unrenderable_param", ""},
		{"object", everything, `{"channel":"FlagChannel","flag":{"a":1}}`, nil, "unrenderable_param", "an object"},
		{"array", everything, `{"channel":"FlagChannel","flag":[1]}`, nil, "unrenderable_param", "an array"},
		{"null", everything, `{"channel":"FlagChannel","flag":null}`, nil, "missing_param", ""},
		{"empty string", everything, `{"channel":"FlagChannel","flag":""}`, nil, "missing_param", ""},
		{"absent", everything, `{"channel":"FlagChannel"}`, nil, "missing_param", ""},
		{"extra keys ignored", everything, `{"channel":"FlagChannel","flag":"x","other":[1,2],"n":1.5}`, []string{"flag:x"}, "", ""},
		{"unknown channel", everything, `{"channel":"FooChannel"}`, nil, "unknown_channel", `channel "FooChannel"`},
		{"turbo without key", everything, `{"channel":"Turbo::StreamsChannel","signed_stream_name":"x"}`, nil, "no_turbo_key", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params := decodeParams(t, tc.identifier)
			channel, _ := params["channel"].(string)
			got, err := a.Authorize(tc.id, channel, params)
			if r := Reason(err); r != tc.reason {
				t.Fatalf("Reason = %q (err %v), want %q", r, err, tc.reason)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("streams = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAuthorizeTurboElementIdentifiers feeds the identifiers the real
// turbo-cable-stream-source element built through Authorize.
func TestAuthorizeTurboElementIdentifiers(t *testing.T) {
	var f struct {
		Cases []struct {
			Identifier string         `json:"identifier"`
			Params     map[string]any `json:"params"`
		} `json:"cases"`
	}
	loadJSONFile(t, "turbo_identifiers_from_element.json", &f)
	turbo := loadTurbo(t)
	a := newAuth(t, Config{AllowAnonymous: true, TurboSecretKeyBase: turbo.AS813.SecretKeyBase})
	want := []struct {
		streams []string
		reason  string
	}{
		{[]string{"Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"}, ""},
		{[]string{"lobby"}, ""},  // extra data-* params are ignored
		{nil, "unknown_channel"}, // a custom channel needs its own route
	}
	if len(f.Cases) != len(want) {
		t.Fatalf("%d element cases, test expects %d", len(f.Cases), len(want))
	}
	for i, c := range f.Cases {
		params := decodeParams(t, c.Identifier)
		if len(params) != len(c.Params) {
			t.Errorf("case %d: identifier and params disagree", i)
		}
		got, err := a.Authorize(&Identity{Anonymous: true}, params["channel"].(string), params)
		if Reason(err) != want[i].reason || !slices.Equal(got, want[i].streams) {
			t.Errorf("case %d: got %q, %v; want %q, %q", i, got, err, want[i].streams, want[i].reason)
		}
	}
}

// TestAuthorizeTurboKeys covers every way to configure the verifier key and
// every way a signed name can be wrong.
func TestAuthorizeTurboKeys(t *testing.T) {
	turbo := loadTurbo(t)
	base := turbo.AS813.SecretKeyBase
	sha256Signed := turbo.AS813.SHA256[0].Signed // Document 123
	sha1Signed := turbo.AS813.SHA1[0].Signed
	stream := turbo.AS813.SHA256[0].Stream
	rawKey := "config.turbo.signed_stream_verifier_key value"
	tests := []struct {
		name   string
		cfg    Config
		signed any
		reason string
	}{
		{"secret_key_base, SHA256 key", Config{TurboSecretKeyBase: base}, sha256Signed, ""},
		{"secret_key_base, SHA1 key", Config{TurboSecretKeyBase: base}, sha1Signed, ""},
		{"hex verifier key (SHA1)", Config{TurboVerifierKey: "hex:" + turbo.AS813.KeyDerivation.SHA1}, sha1Signed, ""},
		{"hex verifier key rejects other key", Config{TurboVerifierKey: "hex:" + turbo.AS813.KeyDerivation.SHA1}, sha256Signed, "bad_signed_stream_name"},
		{"raw verifier key", Config{TurboVerifierKey: rawKey}, SignStreamName([]byte(rawKey), stream), ""},
		{"raw key is not hex-decoded", Config{TurboVerifierKey: turbo.AS813.KeyDerivation.SHA256}, sha256Signed, "bad_signed_stream_name"},
		{"both settings", Config{TurboVerifierKey: rawKey, TurboSecretKeyBase: base}, sha1Signed, ""},
		{"wrong secret_key_base", Config{TurboSecretKeyBase: base + "x"}, sha256Signed, "bad_signed_stream_name"},
		{"tampered", Config{TurboSecretKeyBase: base}, turbo.AS813.Negatives[0].Message, "bad_signed_stream_name"},
		{"not a string", Config{TurboSecretKeyBase: base}, json.Number("12"), "malformed_signed_stream_name"},
		{"absent", Config{TurboSecretKeyBase: base}, nil, "missing_param"},
		{"empty", Config{TurboSecretKeyBase: base}, "", "missing_param"},
		{"no key", Config{}, sha256Signed, "no_turbo_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.AllowAnonymous = true
			a := newAuth(t, tc.cfg)
			params := map[string]any{"channel": turboChannel}
			if tc.signed != nil {
				params["signed_stream_name"] = tc.signed
			}
			got, err := a.Authorize(&Identity{Anonymous: true}, turboChannel, params)
			if r := Reason(err); r != tc.reason {
				t.Fatalf("Reason = %q (err %v), want %q", r, err, tc.reason)
			}
			if err == nil && !slices.Equal(got, []string{stream}) {
				t.Errorf("streams = %q, want %q", got, stream)
			}
			if err != nil && !strings.Contains(err.Error(), `channel "Turbo::StreamsChannel"`) {
				t.Errorf("error does not name the channel: %v", err)
			}
		})
	}
}

// TestAuthorizeTurboRouteOverride: an explicit rule for Turbo::StreamsChannel
// replaces signed-name verification.
func TestAuthorizeTurboRouteOverride(t *testing.T) {
	a := newAuth(t, Config{AllowAnonymous: true, Routes: "public:Turbo::StreamsChannel=turbo:{params.room}"})
	got, err := a.Authorize(nil, turboChannel, map[string]any{"room": "x", "signed_stream_name": "bogus"})
	if err != nil || !slices.Equal(got, []string{"turbo:x"}) {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"document:*", "document:Z2lk", true},
		{"document:*", "document:", true},
		{"document:*", "documents:x", false},
		{"document:*", "xdocument:1", false},
		{"*", "anything:at:all", true},
		{"*", "", true},
		{"chat:*:typing", "chat:room:lobby:typing", true},
		{"chat:*:typing", "chat:room:lobby:typing:x", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"?", "x", false}, // no other metacharacters
		{"[ab]", "a", false},
		{"[ab]", "[ab]", true},
		{"a**", "abc", true},
		{"", "", true},
		{"", "x", false},
		{"é*", "ecole", false},
		{"é*", "été", true},
		{strings.Repeat("*a", 30), strings.Repeat("a", 29) + "b", false}, // no exponential blow-up
	}
	for _, tc := range tests {
		if got := globMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

// TestVerifierKeyHex pins the "hex:" convention.
func TestVerifierKeyHex(t *testing.T) {
	key := []byte{0, 1, 2, 0xff}
	a := newAuth(t, Config{AllowAnonymous: true, TurboVerifierKey: "hex:" + hex.EncodeToString(key)})
	if len(a.turboKeys) != 1 || !bytes.Equal(a.turboKeys[0], key) {
		t.Fatalf("turbo keys = %x", a.turboKeys)
	}
}

func TestConnectionIdentifier(t *testing.T) {
	secret := strings.Repeat("c", 32)
	cases := []struct {
		name, tmpl string
		claims     map[string]any
		want       string
		wantErr    bool
	}{
		{"gid of sub", "{gid:User:claims.sub}", map[string]any{"sub": "42"}, "Z2lkOi8vbXlhcHAvVXNlci80Mg", false},
		// Rails sorts the identified_by values: "AAA" < "Z2lk…".
		{"two values sorted", "{gid:User:claims.sub},{claims.team}", map[string]any{"sub": "42", "team": "AAA"}, "AAA:Z2lkOi8vbXlhcHAvVXNlci80Mg", false},
		{"missing claim refuses", "{claims.team}", map[string]any{"sub": "42"}, "", true},
		{"none configured", "", map[string]any{"sub": "42"}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := New(Config{JWTSecret: secret, GIDApp: "myapp", ConnectionIdentifier: c.tmpl})
			if err != nil {
				t.Fatal(err)
			}
			claims := jwt.MapClaims{"exp": time.Now().Add(time.Minute).Unix()}
			for k, v := range c.claims {
				claims[k] = v
			}
			tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
			id, err := a.Authenticate(httptest.NewRequest("GET", "/cable?token="+tok, nil))
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && id.ConnectionID != c.want {
				t.Errorf("ConnectionID = %q, want %q", id.ConnectionID, c.want)
			}
		})
	}
	for _, bad := range []string{"{params.id}", "{channel}", "{gid:User:claims.sub"} {
		if _, err := New(Config{JWTSecret: secret, GIDApp: "myapp", ConnectionIdentifier: bad}); err == nil {
			t.Errorf("CABLECAR_CONNECTION_IDENTIFIER=%q accepted", bad)
		}
	}
}

// TestReplayModifier: "replay:" marks a route whose subscriptions get the
// last job state; it combines with "public:" in either order and changes
// nothing else about the route.
func TestReplayModifier(t *testing.T) {
	a := newAuth(t, Config{AllowAnonymous: true, Routes: "replay:public:DocumentChannel=document:{params.id};" +
		"public:replay:JobChannel=job:{params.id};public:LobbyChannel=lobby"})
	for channel, want := range map[string]bool{"DocumentChannel": true, "JobChannel": true, "LobbyChannel": false, "NoSuchChannel": false} {
		if got := a.Replays(channel); got != want {
			t.Errorf("Replays(%q) = %v, want %v", channel, got, want)
		}
	}
	got, err := a.Authorize(nil, "DocumentChannel", map[string]any{"id": "7"})
	if err != nil || !slices.Equal(got, []string{"document:7"}) {
		t.Fatalf("Authorize: %q, %v", got, err)
	}
}
