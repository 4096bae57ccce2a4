package rails

import (
	"encoding/base64"
	"net/url"
)

// GlobalID returns the GlobalID URI of a record:
// "gid://<app>/<model>/<id>", with id escaped as Ruby's CGI.escape does
// (space → "+", "/" → "%2F", everything but letters, digits and "-_.~"
// percent-encoded with upper-case hex). Namespaced model names keep their
// "::" ("gid://myapp/Chat::Room/7").
func GlobalID(app, model, id string) string {
	// url.QueryEscape keeps exactly the bytes CGI.escape keeps and also turns
	// space into "+"; the vectors (including "a b/c?d") confirm it.
	return "gid://" + app + "/" + model + "/" + url.QueryEscape(id)
}

// GlobalIDParam returns what GlobalID#to_gid_param gives: the URL-safe Base64
// of GlobalID(app, model, id) with the "=" padding removed, e.g.
// GlobalIDParam("myapp", "User", "42") is "Z2lkOi8vbXlhcHAvVXNlci80Mg".
func GlobalIDParam(app, model, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(GlobalID(app, model, id)))
}
