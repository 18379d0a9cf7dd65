// Package token mints, parses and verifies Volcengine RTC AccessTokens,
// version "001", byte for byte as the official Go, Java and CLI
// implementations do.
//
// Call [New] and [Token.AddPrivilege] / [Token.ExpireTime], then
// [Token.Serialize] to mint a token; call [Parse] and then [Token.Verify]
// (or [Token.VerifyAt]) to check one, and [Token.Expired] to tell an
// expired token apart from a bad signature.
//
// # Format
//
// A token is
//
//	"001" + AppID + base64.StdEncoding(content)
//
// where AppID is exactly 24 bytes and, with every integer little endian and
// every string or byte block prefixed by its u16 length,
//
//	content   = u16 len(msg) | msg | u16 len(signature) | signature
//	msg       = u32 Nonce | u32 IssuedAt | u32 ExpireAt
//	          | u16 len(RoomID) | RoomID | u16 len(UserID) | UserID
//	          | u16 N | N × (u16 privilege | u32 expireAt)   // keys ascending
//	signature = HMAC-SHA256(key = AppKey, data = msg)       // 32 bytes
//
// Times are Unix seconds; 0 means "never expires". The AppID is not covered
// by the signature: a server must check that it is its own AppID.
//
// # Rooms
//
// A login token, used for messaging outside rooms, has RoomID "". A token
// whose RoomID is "*" is valid for any room.
//
// # Verification
//
// [Parse] is strict: it rejects any byte that the format does not account
// for and never panics. [Token.VerifyAt] rejects a token whose ExpireAt has
// passed, then recomputes the HMAC over the exact message bytes that were
// parsed and compares it in constant time with [crypto/hmac.Equal].
package token
