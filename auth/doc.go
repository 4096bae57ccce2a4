// Package auth decides who may connect to cablecar and which streams each
// subscription gets.
//
// # Authentication
//
// A connection presents a JWT in the query parameter "token" (configurable),
// an "Authorization: Bearer" header, or optionally a cookie. Tokens are
// verified with github.com/golang-jwt/jwt/v5, the algorithm pinned to the
// kind of key configured: HS256/384/512 with the shared secret only, RS*/PS*
// with RSA public keys, ES256/384/512 with an ECDSA key on the matching
// curve, EdDSA with Ed25519 keys. "alg":"none" and an HS* token signed with a
// public key's bytes are therefore refused. exp is required by default, nbf
// is honoured, iss and aud are checked when configured, with 5s of leeway.
// Several public keys may be configured at once for rotation.
//
// # Authorization
//
// Routes map an Action Cable channel class to the streams a subscription
// gets, one rule per line (or separated by ";" in CABLECAR_ROUTES):
//
//	DocumentChannel={channel}:{gid:Document:params.id}
//	NotificationsChannel={channel}:{gid:User:claims.sub}
//	public:LobbyChannel=lobby,{channel}:{params.room}
//
// {channel} is Rails' channel_name of the class ("document"), {params.NAME}
// a value from the subscription identifier, {claims.NAME} a verified token
// claim, and {gid:Model:params.NAME} / {gid:Model:claims.NAME} that value as
// a GlobalID param (to_gid_param), so the names match what
// DocumentChannel.broadcast_to(document, …) publishes to.
//
// A route whose templates read no identifier param is granted to every
// admitted connection: the token alone vouches for claims. A route that
// reads identifier params is granted only if the token's streams claim has a
// pattern matching every resulting stream ("*" matches any run of
// characters), unless the rule starts with "public:".
//
// Turbo::StreamsChannel needs no route: its signed_stream_name is verified
// like turbo-rails does (see VerifyStreamName) with a key from
// CABLECAR_TURBO_SECRET_KEY_BASE or CABLECAR_TURBO_VERIFIER_KEY, and the
// signed name is the stream.
//
// Every error is classified by Reason for logs and metrics, and no error
// message contains a token.
package auth
