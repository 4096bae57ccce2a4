package auth_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/cablecar/cablecar/auth"
)

// A token whose streams claim allows "document:*" may subscribe to
// DocumentChannel for any document; the stream is the one
// DocumentChannel.broadcast_to(document, …) publishes to.
func ExampleAuth_Authorize() {
	a, err := auth.New(auth.Config{
		JWTSecret: "an-example-secret-of-at-least-32-bytes",
		GIDApp:    "myapp",
		Routes:    "DocumentChannel={channel}:{gid:Document:params.id}",
	})
	if err != nil {
		panic(err)
	}
	token, _ := a.Mint("42", []string{"document:*"}, time.Hour)
	id, err := a.Authenticate(httptest.NewRequest("GET", "/cable?token="+token, nil))
	if err != nil {
		panic(err)
	}
	params := map[string]any{"channel": "DocumentChannel", "id": "123"}
	streams, err := a.Authorize(id, "DocumentChannel", params)
	fmt.Println(id, streams, err)

	_, err = a.Authorize(id, "ChatChannel", map[string]any{"channel": "ChatChannel"})
	fmt.Println(auth.Reason(err), err)
	// Output:
	// 42 [document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz] <nil>
	// unknown_channel channel "ChatChannel": unknown channel: no CABLECAR_ROUTES rule for it
}

// The key turbo-rails derives from secret_key_base signs names exactly as
// turbo_stream_from does.
func ExampleVerifyStreamName() {
	key := auth.TurboKey("test-secret-key-base-0123456789abcdef", false)
	signed := auth.SignStreamName(key, "lobby")
	fmt.Println(signed)

	name, err := auth.VerifyStreamName([][]byte{key}, signed)
	fmt.Println(name, err)

	_, err = auth.VerifyStreamName([][]byte{key}, "ImxvYmJ5Ig==--"+fmt.Sprintf("%064d", 0))
	fmt.Println(auth.Reason(err))
	// Output:
	// ImxvYmJ5Ig==--c2d88537188be15810bafe8f0034c184dcd3c05663d518abdc27f4fe9b7a7836
	// lobby <nil>
	// bad_signed_stream_name
}

func ExampleAuth_RedactQuery() {
	a, _ := auth.New(auth.Config{AllowAnonymous: true})
	fmt.Println(a.RedactQuery("room=1&token=eyJhbGciOi.x.y"))
	// Output: room=1&token=REDACTED
}
