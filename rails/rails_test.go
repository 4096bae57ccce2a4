package rails

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// railsVersions are the Action Cable versions the vectors were recorded with.
var railsVersions = []string{"6.1.7.10", "8.1.3"}

type gidVectors struct {
	GlobalIDApp string `json:"globalid_app"`
	GID         []struct {
		Model   string `json:"model_class"`
		ID      any    `json:"id"` // json.Number or string
		URI     string `json:"to_global_id"`
		Param   string `json:"to_gid_param"`
		Decoded string `json:"base64url_decoded"`
	} `json:"gid"`
	ChannelNames []struct {
		Class string `json:"class"`
		Name  string `json:"channel_name"`
	} `json:"channel_names"`
	BroadcastingFor []struct {
		Class    string `json:"channel_class"`
		Argument string `json:"argument"`
		Want     string `json:"broadcasting_for"`
	} `json:"broadcasting_for"`
}

type prefixVectors struct {
	ChannelPrefix []struct {
		Prefix       *string `json:"channel_prefix"`
		Broadcasting string  `json:"broadcasting"`
		RedisChannel string  `json:"redis_channel"`
		Internal     string  `json:"internal_channel_for_user_42"`
	} `json:"channel_prefix"`
	ConnectionIdentifiers []struct {
		Class      string            `json:"connection_class"`
		Values     map[string]string `json:"values"`
		Identifier string            `json:"connection_identifier"`
		Internal   *string           `json:"internal_channel"`
	} `json:"connection_identifiers"`
}

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
}

func TestGlobalIDVectors(t *testing.T) {
	for _, version := range railsVersions {
		var vec gidVectors
		loadJSON(t, "gid_and_broadcasting.actioncable-"+version+".json", &vec)
		if len(vec.GID) == 0 {
			t.Fatalf("%s: no gid vectors", version)
		}
		for _, tc := range vec.GID {
			id := fmt.Sprint(tc.ID) // an integer id renders as its digits, like to_param
			t.Run(version+"/"+tc.Model+"/"+id, func(t *testing.T) {
				if got := GlobalID(vec.GlobalIDApp, tc.Model, id); got != tc.URI {
					t.Errorf("GlobalID = %q, want %q", got, tc.URI)
				}
				if tc.Decoded != tc.URI {
					t.Errorf("vector inconsistent: decoded %q, URI %q", tc.Decoded, tc.URI)
				}
				if got := GlobalIDParam(vec.GlobalIDApp, tc.Model, id); got != tc.Param {
					t.Errorf("GlobalIDParam = %q, want %q", got, tc.Param)
				}
			})
		}
	}
}

func TestChannelNameVectors(t *testing.T) {
	for _, version := range railsVersions {
		var vec gidVectors
		loadJSON(t, "gid_and_broadcasting.actioncable-"+version+".json", &vec)
		for _, tc := range vec.ChannelNames {
			t.Run(version+"/"+tc.Class, func(t *testing.T) {
				if got := ChannelName(tc.Class); got != tc.Name {
					t.Errorf("ChannelName(%q) = %q, want %q", tc.Class, got, tc.Name)
				}
			})
		}
	}
}

// TestChannelNameRules covers underscore cases the vectors do not: acronyms,
// digits, dashes and names that need no change.
func TestChannelNameRules(t *testing.T) {
	tests := []struct{ class, want string }{
		{"HTMLParserChannel", "html_parser"},
		{"APIChannel", "api"},
		{"V2UpdatesChannel", "v2_updates"},
		{"Api::V1::ThingsChannel", "api:v1:things"},
		{"ABCDef", "abc_def"},
		{"Channel", ""},
		{"lowercase", "lowercase"},
		{"with-dash", "with_dash"},
		{"DocumentChannelChannel", "document_channel"},
		{"A::::B", "a/b"}, // "::::" → "::" → "/", as Ruby's gsub and underscore do
		{"", ""},
	}
	for _, tc := range tests {
		if got := ChannelName(tc.class); got != tc.want {
			t.Errorf("ChannelName(%q) = %q, want %q", tc.class, got, tc.want)
		}
	}
}

// digits matches an Integer argument.
var digits = regexp.MustCompile(`^\d+$`)

// modelArg matches a record in the vectors' Ruby notation: Model.new(id).
var modelArg = regexp.MustCompile(`^([A-Z][A-Za-z:]*)\.new\((\d+)\)$`)

// rubyArgParts turns a broadcasting_for argument, written as the Ruby
// expression the vector recorded, into the rendered parts Broadcasting takes.
// ok is false for arguments this API does not model.
func rubyArgParts(app, arg string) (parts []string, ok bool) {
	arg, _, _ = strings.Cut(arg, " (") // drop the "(String)" style annotation
	if arg == "nil" {
		// Rails 8.1 yields the bare channel name for nil; 6.1 yields a
		// trailing ":". We follow 8.1: nil is "no parts".
		return nil, true
	}
	if strings.HasPrefix(arg, "[") {
		// An array, possibly nested: flattening is plain concatenation.
		flat := strings.NewReplacer("[", "", "]", "").Replace(arg)
		for _, item := range strings.Split(flat, ", ") {
			p, ok := rubyArgParts(app, item)
			if !ok {
				return nil, false
			}
			parts = append(parts, p...)
		}
		return parts, true
	}
	if m := modelArg.FindStringSubmatch(arg); m != nil {
		return []string{GlobalIDParam(app, m[1], m[2])}, true
	}
	if s, found := strings.CutPrefix(arg, ":"); found { // a Symbol renders as its name
		return []string{s}, true
	}
	if s, found := strings.CutPrefix(arg, `"`); found {
		return []string{strings.TrimSuffix(s, `"`)}, true
	}
	if digits.MatchString(arg) {
		return []string{arg}, true
	}
	return nil, false
}

func TestBroadcastingVectors(t *testing.T) {
	for _, version := range railsVersions {
		var vec gidVectors
		loadJSON(t, "gid_and_broadcasting.actioncable-"+version+".json", &vec)
		for _, tc := range vec.BroadcastingFor {
			t.Run(version+"/"+tc.Class+"/"+tc.Argument, func(t *testing.T) {
				if tc.Argument == "nil" && version == "6.1.7.10" {
					// Rails 6.1 renders nil as an empty part (trailing ":");
					// cablecar follows 8.1, where nil is no part at all. The
					// 6.1 name is still reachable with an explicit "".
					if got := Broadcasting(tc.Class, ""); got != tc.Want {
						t.Errorf("Broadcasting(%q, \"\") = %q, want %q", tc.Class, got, tc.Want)
					}
					return
				}
				parts, ok := rubyArgParts(vec.GlobalIDApp, tc.Argument)
				if !ok {
					t.Fatalf("vector argument %q not understood by the test; extend rubyArgParts", tc.Argument)
				}
				if got := Broadcasting(tc.Class, parts...); got != tc.Want {
					t.Errorf("Broadcasting(%q, %q) = %q, want %q", tc.Class, parts, got, tc.Want)
				}
			})
		}
	}
}

// keyAbsent is how the prefix vectors mark a cable.yml without channel_prefix.
const keyAbsent = "(key absent)"

func TestRedisChannelVectors(t *testing.T) {
	const user42 = "Z2lkOi8vbXlhcHAvVXNlci80Mg"
	for _, version := range railsVersions {
		var vec prefixVectors
		loadJSON(t, "prefix_and_identifier.actioncable-"+version+".json", &vec)
		for _, tc := range vec.ChannelPrefix {
			// The vectors write a missing key as "(key absent)" and a nil
			// prefix as null; both mean "no prefix", which is "" here.
			name, p := "null", ""
			if tc.Prefix != nil {
				name = *tc.Prefix
				if *tc.Prefix != keyAbsent {
					p = *tc.Prefix
				}
			}
			t.Run(version+"/"+name, func(t *testing.T) {
				if tc.Prefix != nil && *tc.Prefix == "" {
					t.Skip(`an explicit channel_prefix "" (leading ":") is not supported: "" means no prefix`)
				}
				if got := RedisChannel(p, tc.Broadcasting); got != tc.RedisChannel {
					t.Errorf("RedisChannel = %q, want %q", got, tc.RedisChannel)
				}
				internal := RedisChannel(p, "action_cable/"+ConnectionIdentifier(user42))
				if internal != tc.Internal {
					t.Errorf("internal channel = %q, want %q", internal, tc.Internal)
				}
			})
		}
	}
}

// recordValue matches a record in the identifier vectors: "User(42)".
var recordValue = regexp.MustCompile(`^([A-Z][A-Za-z:]*)\((\d+)\)$`)

// identifiedValue renders a connection identifier value from the vectors:
// "User(42)" is a record, anything else a plain string.
func identifiedValue(v string) string {
	if m := recordValue.FindStringSubmatch(v); m != nil {
		return GlobalIDParam("myapp", m[1], m[2])
	}
	return v
}

func TestConnectionIdentifierVectors(t *testing.T) {
	for _, version := range railsVersions {
		var vec prefixVectors
		loadJSON(t, "prefix_and_identifier.actioncable-"+version+".json", &vec)
		for i, tc := range vec.ConnectionIdentifiers {
			t.Run(version+"/"+tc.Class, func(t *testing.T) {
				var values []string
				for _, v := range tc.Values {
					values = append(values, identifiedValue(v))
				}
				got := ConnectionIdentifier(values...)
				if got != tc.Identifier {
					t.Errorf("case %d: ConnectionIdentifier(%q) = %q, want %q", i, values, got, tc.Identifier)
				}
				if tc.Internal == nil {
					if got != "" {
						t.Errorf("no internal channel expected, identifier %q", got)
					}
					return
				}
				if internal := "action_cable/" + got; internal != *tc.Internal {
					t.Errorf("internal channel = %q, want %q", internal, *tc.Internal)
				}
			})
		}
	}
}

func TestConnectionIdentifierKeepsArgument(t *testing.T) {
	values := []string{"b", "a"}
	if got := ConnectionIdentifier(values...); got != "a:b" {
		t.Fatalf("ConnectionIdentifier = %q, want %q", got, "a:b")
	}
	if values[0] != "b" {
		t.Errorf("argument slice was reordered: %q", values)
	}
}

func TestGlobalIDEscaping(t *testing.T) {
	tests := []struct{ id, want string }{
		{"a b/c?d", "gid://myapp/M/a+b%2Fc%3Fd"},
		{"x~y_z.w-v", "gid://myapp/M/x~y_z.w-v"},
		{"é", "gid://myapp/M/%C3%A9"},
		{"50%", "gid://myapp/M/50%25"},
		{"a+b", "gid://myapp/M/a%2Bb"},
	}
	for _, tc := range tests {
		if got := GlobalID("myapp", "M", tc.id); got != tc.want {
			t.Errorf("GlobalID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}
