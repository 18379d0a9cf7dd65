package token

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Test vector from reference/bytertc-semantics.md §5.
const (
	vecAppID  = "123456781234567812345678"
	vecAppKey = "app key"
	vecRoom   = "room1"
	vecUser   = "user1"
	vecNonce  = 12345678
	vecIssued = 1700000000
	vecExpire = 1700007200
	vecMsgHex = "4e61bc0000f15365200d54650500726f6f6d310500757365723105000000200d54650100200d54650200200d54650300200d54650400200d5465"
	vecSigHex = "37086e6fc40a0c8321b54302e812edc1f6f6c7c43a2e857084beace79f3944be"
	vecToken  = "001123456781234567812345678OgBOYbwAAPFTZSANVGUFAHJvb20xBQB1c2VyMQUAAAAgDVRlAQAgDVRlAgAgDVRlAwAgDVRlBAAgDVRlIAA3CG5vxAoMgyG1QwLoEu3B9vbHxDouhXCEvqznnzlEvg=="
)

var (
	vecPrivs = map[uint16]uint32{0: vecExpire, 1: vecExpire, 2: vecExpire, 3: vecExpire, 4: vecExpire}
	// beforeExpiry and afterExpiry bracket the vector's ExpireAt.
	beforeExpiry = time.Unix(vecExpire-1, 0)
	atExpiry     = time.Unix(vecExpire, 0)
	afterExpiry  = time.Unix(vecExpire+1, 0)
)

// vectorToken builds the §5 vector by hand through the public API.
func vectorToken() *Token {
	t := New(vecAppID, vecAppKey, vecRoom, vecUser)
	t.Nonce, t.IssuedAt = vecNonce, vecIssued
	t.ExpireTime(time.Unix(vecExpire, 0))
	t.AddPrivilege(PrivPublishStream, time.Unix(vecExpire, 0))
	t.AddPrivilege(PrivSubscribeStream, time.Unix(vecExpire, 0))
	return t
}

// requireFields checks the exported fields other than AppKey.
func requireFields(t *testing.T, want, got *Token) {
	t.Helper()
	require.Equal(t, want.AppID, got.AppID, "AppID")
	require.Equal(t, want.RoomID, got.RoomID, "RoomID")
	require.Equal(t, want.UserID, got.UserID, "UserID")
	require.Equal(t, want.Nonce, got.Nonce, "Nonce")
	require.Equal(t, want.IssuedAt, got.IssuedAt, "IssuedAt")
	require.Equal(t, want.ExpireAt, got.ExpireAt, "ExpireAt")
	require.Equal(t, len(want.Privileges), len(got.Privileges), "len(Privileges)")
	for k, v := range want.Privileges {
		gv, ok := got.Privileges[k]
		require.True(t, ok, "privilege %d missing", k)
		require.Equal(t, v, gv, "privilege %d", k)
	}
}

func TestVectorSerialize(t *testing.T) {
	tok := vectorToken()
	require.Equal(t, vecPrivs, tok.Privileges)

	msg, err := tok.pack()
	require.NoError(t, err)
	require.Equal(t, vecMsgHex, hex.EncodeToString(msg))
	require.Equal(t, vecSigHex, hex.EncodeToString(sign(vecAppKey, msg)))

	raw, err := tok.Serialize()
	require.NoError(t, err)
	require.Equal(t, vecToken, raw)
}

func TestVectorParse(t *testing.T) {
	tok, err := Parse(vecToken)
	require.NoError(t, err)
	require.Equal(t, vecAppID, tok.AppID)
	require.Empty(t, tok.AppKey)
	require.Equal(t, vecRoom, tok.RoomID)
	require.Equal(t, vecUser, tok.UserID)
	require.Equal(t, uint32(vecNonce), tok.Nonce)
	require.Equal(t, uint32(vecIssued), tok.IssuedAt)
	require.Equal(t, uint32(vecExpire), tok.ExpireAt)
	require.Equal(t, vecPrivs, tok.Privileges)
	require.Equal(t, vecMsgHex, hex.EncodeToString(tok.msg))
	require.Equal(t, vecSigHex, hex.EncodeToString(tok.sig))
}

func TestVectorVerify(t *testing.T) {
	tok, err := Parse(vecToken)
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		key     string
		now     time.Time
		want    bool
		expired bool
	}{
		{"issued", vecAppKey, time.Unix(vecIssued, 0), true, false},
		{"before expiry", vecAppKey, beforeExpiry, true, false},
		{"at expiry", vecAppKey, atExpiry, true, false},
		{"after expiry", vecAppKey, afterExpiry, false, true},
		{"long after expiry", vecAppKey, time.Unix(1<<40, 0), false, true},
		{"wrong key", "app kez", beforeExpiry, false, false},
		{"key prefix", "app ke", beforeExpiry, false, false},
		{"empty key", "", beforeExpiry, false, false},
		{"wrong key after expiry", "nope", afterExpiry, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tok.VerifyAt(tc.key, tc.now))
			require.Equal(t, tc.expired, tok.Expired(tc.now))
		})
	}
	// The vector expired in 2023.
	require.False(t, tok.Verify(vecAppKey))
}

func TestNew(t *testing.T) {
	before := time.Now().Unix()
	tok := New(vecAppID, vecAppKey, vecRoom, vecUser)
	after := time.Now().Unix()

	require.Equal(t, vecAppID, tok.AppID)
	require.Equal(t, vecAppKey, tok.AppKey)
	require.Equal(t, vecRoom, tok.RoomID)
	require.Equal(t, vecUser, tok.UserID)
	require.GreaterOrEqual(t, int64(tok.IssuedAt), before)
	require.LessOrEqual(t, int64(tok.IssuedAt), after)
	require.Zero(t, tok.ExpireAt)
	require.NotNil(t, tok.Privileges)
	require.Empty(t, tok.Privileges)

	seen := make(map[uint32]bool)
	for range 1000 {
		n := New("", "", "", "").Nonce
		require.GreaterOrEqual(t, n, uint32(1))
		require.Less(t, n, uint32(maxNonce))
		seen[n] = true
	}
	require.Greater(t, len(seen), 990, "nonces should be random")
}

func TestExpireTime(t *testing.T) {
	tok := New(vecAppID, vecAppKey, "", "u")
	tok.ExpireTime(time.Time{})
	require.Zero(t, tok.ExpireAt, "zero time leaves the default")

	tok.ExpireTime(time.Unix(vecExpire, 0))
	require.Equal(t, uint32(vecExpire), tok.ExpireAt)

	tok.ExpireTime(time.Time{})
	require.Equal(t, uint32(vecExpire), tok.ExpireAt, "zero time does not clear")
}

func TestAddPrivilege(t *testing.T) {
	at := time.Unix(vecExpire, 0)
	for _, tc := range []struct {
		name string
		p    Privilege
		at   time.Time
		want map[uint16]uint32
	}{
		{"publish", PrivPublishStream, at, map[uint16]uint32{0: vecExpire, 1: vecExpire, 2: vecExpire, 3: vecExpire}},
		{"publish forever", PrivPublishStream, time.Time{}, map[uint16]uint32{0: 0, 1: 0, 2: 0, 3: 0}},
		{"subscribe", PrivSubscribeStream, at, map[uint16]uint32{4: vecExpire}},
		{"subscribe forever", PrivSubscribeStream, time.Time{}, map[uint16]uint32{4: 0}},
		{"audio only", privPublishAudioStream, at, map[uint16]uint32{1: vecExpire}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := &Token{} // nil map: AddPrivilege allocates it
			tok.AddPrivilege(tc.p, tc.at)
			require.Equal(t, tc.want, tok.Privileges)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	exp := time.Unix(vecExpire, 0)
	for _, tc := range []struct {
		name   string
		roomID string
		userID string
		setup  func(*Token)
	}{
		{"vector", vecRoom, vecUser, func(t *Token) {
			t.ExpireTime(exp)
			t.AddPrivilege(PrivPublishStream, exp)
			t.AddPrivilege(PrivSubscribeStream, exp)
		}},
		{"login token", "", "alice", func(t *Token) {
			t.ExpireTime(exp)
			t.AddPrivilege(PrivPublishStream, exp)
			t.AddPrivilege(PrivSubscribeStream, exp)
		}},
		{"wildcard room", "*", "bob", func(t *Token) {
			t.AddPrivilege(PrivSubscribeStream, time.Time{})
		}},
		{"no privileges, never expires", "room", "carol", func(*Token) {}},
		{"empty ids", "", "", func(*Token) {}},
		{"unicode ids", "会议室-1", "用户😀", func(t *Token) {
			t.AddPrivilege(PrivSubscribeStream, exp)
		}},
		{"extreme values", "r", "u", func(t *Token) {
			t.Nonce, t.IssuedAt, t.ExpireAt = 0, 0xffffffff, 0xffffffff
			t.Privileges[0xffff] = 0xffffffff
			t.Privileges[0] = 0
		}},
		{"largest message", strings.Repeat("r", maxU16Size-minMsgLen-1000), strings.Repeat("u", 1000), func(*Token) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := New(vecAppID, vecAppKey, tc.roomID, tc.userID)
			tc.setup(tok)
			raw, err := tok.Serialize()
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(raw, version+vecAppID))
			now := time.Unix(int64(tok.IssuedAt), 0)
			if tok.ExpireAt > 0 {
				now = time.Unix(int64(tok.ExpireAt), 0)
			}
			require.True(t, tok.VerifyAt(vecAppKey, now))

			got, err := Parse(raw)
			require.NoError(t, err)
			requireFields(t, tok, got)
			require.Empty(t, got.AppKey)
			require.True(t, got.VerifyAt(vecAppKey, now))
			require.False(t, got.VerifyAt(vecAppKey+"x", now))

			// Re-signing the parsed fields gives back the same string.
			got.AppKey = vecAppKey
			again, err := got.Serialize()
			require.NoError(t, err)
			require.Equal(t, raw, again)
		})
	}
}

func TestVerifyUnparsed(t *testing.T) {
	tok := vectorToken()
	require.True(t, tok.VerifyAt(vecAppKey, beforeExpiry))
	require.False(t, tok.VerifyAt(vecAppKey, afterExpiry))
	require.False(t, tok.VerifyAt("other", beforeExpiry))
	require.False(t, tok.VerifyAt("", beforeExpiry))

	tok.AppKey = ""
	require.False(t, tok.VerifyAt(vecAppKey, beforeExpiry), "no key to compare with")

	tok = vectorToken()
	tok.RoomID = strings.Repeat("r", maxU16Size+1)
	require.False(t, tok.VerifyAt(vecAppKey, beforeExpiry), "unencodable fields")

	tok = New(vecAppID, vecAppKey, "", "u")
	require.True(t, tok.Verify(vecAppKey), "a fresh token without expiry")
}

// VerifyAt checks the bytes that were parsed, not the fields.
func TestVerifyUsesParsedBytes(t *testing.T) {
	tok, err := Parse(vecToken)
	require.NoError(t, err)
	tok.RoomID = "*"
	tok.Privileges[99] = 0
	tok.ExpireAt = 0
	require.True(t, tok.VerifyAt(vecAppKey, beforeExpiry))
	require.False(t, tok.VerifyAt(vecAppKey, afterExpiry), "the signed expiry still applies")
	require.False(t, tok.Expired(afterExpiry), "Expired reads the field")

	// Re-signing uses the edited fields.
	tok.AppKey = vecAppKey
	resigned, err := tok.Serialize()
	require.NoError(t, err)
	again, err := Parse(resigned)
	require.NoError(t, err)
	require.Equal(t, "*", again.RoomID)
	require.True(t, again.VerifyAt(vecAppKey, afterExpiry))
}

// Some ports write privileges in insertion order or twice; Parse accepts
// them like the reference does, and the signature covers the bytes as sent.
func TestParseUnsortedPrivileges(t *testing.T) {
	msg := buildMsg(1, 2, 3, "room", "user", [][2]uint32{{4, 7}, {0, 5}, {4, 9}})
	raw := encode(vecAppID, msg, sign(vecAppKey, msg))
	tok, err := Parse(raw)
	require.NoError(t, err)
	require.Equal(t, map[uint16]uint32{0: 5, 4: 9}, tok.Privileges)
	require.True(t, tok.VerifyAt(vecAppKey, time.Unix(3, 0)))
}

// buildMsg encodes a msg field by field, including shapes Serialize never
// produces.
func buildMsg(nonce, issued, expire uint32, room, user string, privs [][2]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, nonce)
	b = binary.LittleEndian.AppendUint32(b, issued)
	b = binary.LittleEndian.AppendUint32(b, expire)
	b = appendString(b, room)
	b = appendString(b, user)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(privs)))
	for _, p := range privs {
		b = binary.LittleEndian.AppendUint16(b, uint16(p[0]))
		b = binary.LittleEndian.AppendUint32(b, p[1])
	}
	return b
}

// rawContent wraps arbitrary content bytes into a token string.
func rawContent(content []byte) string {
	return version + vecAppID + base64.StdEncoding.EncodeToString(content)
}

func TestParseErrors(t *testing.T) {
	good := buildMsg(1, 2, 3, "room", "user", [][2]uint32{{0, 5}})
	sig := sign(vecAppKey, good)
	content := func(parts ...[]byte) string {
		var c []byte
		for _, p := range parts {
			c = append(c, p...)
		}
		return rawContent(c)
	}
	u16 := func(n int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(n)) }
	withSig := func(msg []byte) string { return encode(vecAppID, msg, sign(vecAppKey, msg)) }
	body := vecToken[prefixLen:]

	for _, tc := range []struct {
		name string
		raw  string
		want string // substring of the error
	}{
		{"empty", "", "want more than 27"},
		{"prefix only", version + vecAppID, "want more than 27"},
		{"short AppID", version + vecAppID[:23] + body, "base64"},
		{"wrong version", "002" + vecToken[3:], "version"},
		{"lowercase garbage", strings.Repeat("x", 40), "version"},
		{"not base64", version + vecAppID + "!!!!", "base64"},
		{"missing padding", strings.TrimSuffix(vecToken, "=="), "base64"},
		{"extra padding", vecToken + "=", "base64"},
		{"data after padding", vecToken + "AAAA", "base64"},
		{"non-zero padding bits", strings.TrimSuffix(vecToken, "vg==") + "vh==", "base64"},
		{"line break", vecToken[:40] + "\n" + vecToken[40:], "line break"},
		{"carriage return", vecToken[:40] + "\r" + vecToken[40:], "line break"},
		{"url alphabet", strings.ReplaceAll(vecToken, "+", "-") + "-", "base64"},
		{"one content byte", rawContent([]byte{0}), "message length"},
		{"message length exceeds content", content(u16(len(good)+1), good), "message length"},
		{"no signature", content(u16(len(good)), good), "signature length"},
		{"signature length exceeds content", content(u16(len(good)), good, u16(33), sig), "signature length"},
		{"short signature", content(u16(len(good)), good, u16(31), sig[:31]), "signature is 31 bytes"},
		{"long signature", content(u16(len(good)), good, u16(33), sig, []byte{0}), "signature is 33 bytes"},
		{"empty signature", content(u16(len(good)), good, u16(0)), "signature is 0 bytes"},
		{"trailing bytes after signature", content(u16(len(good)), good, u16(32), sig, []byte{0}), "trailing"},
		{"empty message", withSig(nil), "message is 0 bytes"},
		{"message shorter than header", withSig(good[:11]), "message is 11 bytes"},
		{"no room length", withSig(good[:12]), "RoomID length"},
		{"room length exceeds message", withSig(append(good[:12:12], 0xff, 0xff)), "RoomID length"},
		{"no user length", withSig(good[:18]), "UserID length"},
		{"user length exceeds message", withSig(append(good[:18:18], 9, 0, 'u')), "UserID length"},
		{"no privilege count", withSig(good[:24]), "privilege count"},
		{"half a privilege count", withSig(good[:25]), "privilege count"},
		{"count exceeds privileges", withSig(append(good[:24:24], 2, 0, 0, 0, 5, 0, 0, 0)), "2 privileges in 6 bytes"},
		{"partial privilege", withSig(good[:len(good)-1]), "1 privileges in 5 bytes"},
		{"trailing bytes after privileges", withSig(append(good[:len(good):len(good)], 0)), "1 privileges in 7 bytes"},
		{"huge count", withSig(append(good[:24:24], 0xff, 0xff)), "65535 privileges in 0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NotPanics(t, func() {
				tok, err := Parse(tc.raw)
				require.ErrorIs(t, err, ErrMalformed)
				require.ErrorContains(t, err, tc.want)
				require.True(t, strings.HasPrefix(err.Error(), "token: malformed: "), err.Error())
				require.Nil(t, tok)
			})
		})
	}
}

// Every proper prefix of a valid token fails to parse or to verify.
func TestTruncation(t *testing.T) {
	for _, raw := range validTokens(t) {
		for i := range len(raw) {
			cut := raw[:i]
			require.NotPanics(t, func() {
				tok, err := Parse(cut)
				if err != nil {
					require.ErrorIs(t, err, ErrMalformed)
					return
				}
				require.False(t, tok.VerifyAt(vecAppKey, beforeExpiry), "prefix %d of %q verifies", i, raw)
			})
		}
	}
}

// Every single-byte change fails to parse or to verify, except in the AppID,
// which the format leaves outside the signature: there Parse reports the
// changed AppID, which a server compares with its own.
func TestByteFlip(t *testing.T) {
	for _, raw := range validTokens(t) {
		want, err := Parse(raw)
		require.NoError(t, err)
		for i := range len(raw) {
			for _, mask := range []byte{0x01, 0x02, 0x10, 0x20, 0x80, 0xff} {
				b := []byte(raw)
				b[i] ^= mask
				flipped := string(b)
				require.NotPanics(t, func() {
					tok, err := Parse(flipped)
					switch {
					case err != nil:
						require.ErrorIs(t, err, ErrMalformed)
					case i >= len(version) && i < prefixLen:
						require.NotEqual(t, want.AppID, tok.AppID)
						require.Equal(t, want.msg, tok.msg)
					default:
						require.False(t, tok.VerifyAt(vecAppKey, beforeExpiry),
							"byte %d ^ %#x of %q verifies", i, mask, raw)
					}
				})
			}
		}
	}
}

// validTokens returns tokens that verify with vecAppKey at beforeExpiry.
func validTokens(t *testing.T) []string {
	t.Helper()
	login := vectorToken()
	login.RoomID = ""
	wildcard := vectorToken()
	wildcard.RoomID = "*"
	wildcard.Privileges = nil
	toks := []string{vecToken}
	for _, tok := range []*Token{login, wildcard} {
		raw, err := tok.Serialize()
		require.NoError(t, err)
		toks = append(toks, raw)
	}
	for _, raw := range toks {
		tok, err := Parse(raw)
		require.NoError(t, err)
		require.True(t, tok.VerifyAt(vecAppKey, beforeExpiry))
	}
	return toks
}

func TestSerializeErrors(t *testing.T) {
	many := make(map[uint16]uint32, maxU16Size+1)
	for k := range maxU16Size + 1 {
		many[uint16(k)] = 0
	}
	for _, tc := range []struct {
		name  string
		setup func(*Token)
		want  string
	}{
		{"empty AppID", func(t *Token) { t.AppID = "" }, "AppID is 0 bytes, want 24"},
		{"short AppID", func(t *Token) { t.AppID = vecAppID[:23] }, "AppID is 23 bytes"},
		{"long AppID", func(t *Token) { t.AppID = vecAppID + "9" }, "AppID is 25 bytes"},
		{"empty AppKey", func(t *Token) { t.AppKey = "" }, "empty AppKey"},
		{"long RoomID", func(t *Token) { t.RoomID = strings.Repeat("r", maxU16Size+1) }, "RoomID is 65536 bytes"},
		{"long UserID", func(t *Token) { t.UserID = strings.Repeat("u", maxU16Size+1) }, "UserID is 65536 bytes"},
		{"too many privileges", func(t *Token) { t.Privileges = many }, "65536 privileges"},
		{"message too long", func(t *Token) {
			t.RoomID = strings.Repeat("r", 40000)
			t.UserID = strings.Repeat("u", 40000)
		}, "message is 80018 bytes"},
		{"message one byte too long", func(t *Token) {
			t.RoomID = strings.Repeat("r", maxU16Size-minMsgLen+1)
			t.UserID = ""
		}, "message is 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := New(vecAppID, vecAppKey, "room", "user")
			tc.setup(tok)
			raw, err := tok.Serialize()
			require.ErrorContains(t, err, tc.want)
			require.True(t, strings.HasPrefix(err.Error(), "token: "), err.Error())
			require.NotErrorIs(t, err, ErrMalformed)
			require.Empty(t, raw)
		})
	}
}

func TestExpired(t *testing.T) {
	for _, tc := range []struct {
		expireAt uint32
		now      int64
		want     bool
	}{
		{0, 1 << 40, false},
		{10, 9, false},
		{10, 10, false},
		{10, 11, true},
		{10, -1, false},
		{0xffffffff, 0xffffffff + 1, true},
	} {
		t.Run(fmt.Sprintf("%d@%d", tc.expireAt, tc.now), func(t *testing.T) {
			tok := &Token{ExpireAt: tc.expireAt}
			require.Equal(t, tc.want, tok.Expired(time.Unix(tc.now, 0)))
		})
	}
}
