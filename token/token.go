package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

const (
	version    = "001"
	appIDLen   = 24
	prefixLen  = len(version) + appIDLen // "001" + AppID
	sigLen     = sha256.Size
	headerLen  = 3 * 4                 // Nonce, IssuedAt, ExpireAt
	privLen    = 2 + 4                 // u16 key, u32 expireAt
	maxNonce   = 99999999              // Nonce is drawn from [1, maxNonce)
	maxU16Size = math.MaxUint16        // largest length a u16 prefix can hold
	minMsgLen  = headerLen + 2 + 2 + 2 // empty RoomID, UserID and privileges
)

// ErrMalformed is wrapped by every error [Parse] returns.
var ErrMalformed = errors.New("token: malformed")

// strictBase64 rejects non-zero padding bits, so that a token has exactly one
// valid spelling. Line breaks, which the decoder would skip, are rejected by
// [Parse] before decoding.
var strictBase64 = base64.StdEncoding.Strict()

// Privilege is a key of [Token.Privileges].
type Privilege uint16

// Privileges, with the values of the Volcengine reference implementation.
const (
	// PrivPublishStream allows publishing streams and sending messages.
	// [Token.AddPrivilege] also writes the three keys below with the same
	// expiry, as the reference implementation does.
	PrivPublishStream Privilege = 0

	privPublishAudioStream Privilege = 1
	privPublishVideoStream Privilege = 2
	privPublishDataStream  Privilege = 3

	// PrivSubscribeStream allows subscribing to streams.
	PrivSubscribeStream Privilege = 4
)

// Token is a Volcengine RTC AccessToken. The fields are those of the
// Volcengine reference implementation; times are Unix seconds and 0 means
// "never".
type Token struct {
	AppID  string // exactly 24 bytes
	AppKey string // signing key; empty on a parsed token
	RoomID string // "" for a login token, "*" for any room
	UserID string

	IssuedAt uint32
	ExpireAt uint32 // the token is invalid after it, whatever the privileges say
	Nonce    uint32

	Privileges map[uint16]uint32 // privilege → expireAt

	// msg and sig are the bytes a parsed token carried; nil for a token
	// built with New. Verification runs over msg, never over a re-encoding
	// of the fields.
	msg, sig []byte
}

// New returns a token for userID in roomID, issued now, with a random nonce,
// no expiry and no privileges.
func New(appID, appKey, roomID, userID string) *Token {
	return &Token{
		AppID:      appID,
		AppKey:     appKey,
		RoomID:     roomID,
		UserID:     userID,
		IssuedAt:   uint32(time.Now().Unix()),
		Nonce:      randomNonce(),
		Privileges: make(map[uint16]uint32),
	}
}

// randomNonce returns a uniform random number in [1, maxNonce).
func randomNonce() uint32 {
	n, err := rand.Int(rand.Reader, big.NewInt(maxNonce-1))
	if err != nil {
		// crypto/rand.Reader does not fail since Go 1.24; it crashes the
		// program instead.
		panic("token: crypto/rand: " + err.Error())
	}
	return uint32(n.Int64()) + 1
}

// ExpireTime sets the time after which the token is invalid. A zero expire
// leaves ExpireAt unchanged (by default a token never expires).
func (t *Token) ExpireTime(expire time.Time) {
	if !expire.IsZero() {
		t.ExpireAt = uint32(expire.Unix())
	}
}

// AddPrivilege grants p until expireAt; a zero expireAt grants it with no
// expiry of its own. Granting [PrivPublishStream] also grants the audio,
// video and data publish privileges (keys 1, 2 and 3).
func (t *Token) AddPrivilege(p Privilege, expireAt time.Time) {
	var at uint32
	if !expireAt.IsZero() {
		at = uint32(expireAt.Unix())
	}
	if t.Privileges == nil {
		t.Privileges = make(map[uint16]uint32)
	}
	t.Privileges[uint16(p)] = at
	if p == PrivPublishStream {
		t.Privileges[uint16(privPublishAudioStream)] = at
		t.Privileges[uint16(privPublishVideoStream)] = at
		t.Privileges[uint16(privPublishDataStream)] = at
	}
}

// Serialize signs the fields with AppKey and returns the token string. It
// fails if AppID is not exactly 24 bytes, AppKey is empty, or a field does
// not fit its u16 length prefix.
func (t *Token) Serialize() (string, error) {
	if len(t.AppID) != appIDLen {
		return "", fmt.Errorf("token: AppID is %d bytes, want %d", len(t.AppID), appIDLen)
	}
	if t.AppKey == "" {
		return "", errors.New("token: empty AppKey")
	}
	msg, err := t.pack()
	if err != nil {
		return "", err
	}
	return encode(t.AppID, msg, sign(t.AppKey, msg)), nil
}

// pack encodes the fields into msg.
func (t *Token) pack() ([]byte, error) {
	switch {
	case len(t.RoomID) > maxU16Size:
		return nil, fmt.Errorf("token: RoomID is %d bytes, max %d", len(t.RoomID), maxU16Size)
	case len(t.UserID) > maxU16Size:
		return nil, fmt.Errorf("token: UserID is %d bytes, max %d", len(t.UserID), maxU16Size)
	case len(t.Privileges) > maxU16Size:
		return nil, fmt.Errorf("token: %d privileges, max %d", len(t.Privileges), maxU16Size)
	}
	n := minMsgLen + len(t.RoomID) + len(t.UserID) + privLen*len(t.Privileges)
	if n > maxU16Size {
		return nil, fmt.Errorf("token: message is %d bytes, max %d", n, maxU16Size)
	}
	b := make([]byte, 0, n)
	b = binary.LittleEndian.AppendUint32(b, t.Nonce)
	b = binary.LittleEndian.AppendUint32(b, t.IssuedAt)
	b = binary.LittleEndian.AppendUint32(b, t.ExpireAt)
	b = appendString(b, t.RoomID)
	b = appendString(b, t.UserID)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(t.Privileges)))
	keys := make([]uint16, 0, len(t.Privileges))
	for k := range t.Privileges {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint16(b, k)
		b = binary.LittleEndian.AppendUint32(b, t.Privileges[k])
	}
	return b, nil
}

// appendString appends s with its u16 length; len(s) must fit.
func appendString[S string | []byte](b []byte, s S) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// encode assembles a token string; len(msg) and len(sig) must fit a u16.
func encode(appID string, msg, sig []byte) string {
	content := make([]byte, 0, 2+len(msg)+2+len(sig))
	content = appendString(content, msg)
	content = appendString(content, sig)
	return version + appID + base64.StdEncoding.EncodeToString(content)
}

func sign(appKey string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(appKey))
	h.Write(msg)
	return h.Sum(nil)
}

// Parse decodes a token string without checking its signature; call
// [Token.Verify] for that. Every error wraps [ErrMalformed]. The returned
// token has an empty AppKey.
//
// Parse accepts exactly the strings [Token.Serialize] can produce, except
// that privilege keys may come in any order, as some ports write them: the
// base64 must be canonical (no line breaks, zero padding bits), every length
// must match the bytes that follow, and no byte may be left over.
func Parse(raw string) (*Token, error) {
	if len(raw) <= prefixLen {
		return nil, malformed("%d bytes, want more than %d", len(raw), prefixLen)
	}
	if raw[:len(version)] != version {
		return nil, malformed("version %q, want %q", raw[:len(version)], version)
	}
	body := raw[prefixLen:]
	if strings.ContainsAny(body, "\r\n") {
		return nil, malformed("line break in base64")
	}
	content, err := strictBase64.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %w", ErrMalformed, err)
	}

	d := decoder{b: content}
	msg, ok := d.bytes16()
	if !ok {
		return nil, malformed("message length exceeds content")
	}
	sig, ok := d.bytes16()
	if !ok {
		return nil, malformed("signature length exceeds content")
	}
	if len(sig) != sigLen {
		return nil, malformed("signature is %d bytes, want %d", len(sig), sigLen)
	}
	if len(d.b) != 0 {
		return nil, malformed("%d trailing bytes after signature", len(d.b))
	}

	t := &Token{AppID: strings.Clone(raw[len(version):prefixLen]), msg: msg, sig: sig}
	d = decoder{b: msg}
	if len(msg) < headerLen {
		return nil, malformed("message is %d bytes, want at least %d", len(msg), headerLen)
	}
	t.Nonce, _ = d.u32()
	t.IssuedAt, _ = d.u32()
	t.ExpireAt, _ = d.u32()
	room, ok := d.bytes16()
	if !ok {
		return nil, malformed("RoomID length exceeds message")
	}
	user, ok := d.bytes16()
	if !ok {
		return nil, malformed("UserID length exceeds message")
	}
	t.RoomID, t.UserID = string(room), string(user)
	n, ok := d.u16()
	if !ok {
		return nil, malformed("no privilege count")
	}
	if int(n)*privLen != len(d.b) {
		return nil, malformed("%d privileges in %d bytes", n, len(d.b))
	}
	t.Privileges = make(map[uint16]uint32, n)
	for range n {
		k, _ := d.u16()
		t.Privileges[k], _ = d.u32()
	}
	return t, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// decoder reads little-endian values from the front of b.
type decoder struct{ b []byte }

func (d *decoder) u16() (uint16, bool) {
	if len(d.b) < 2 {
		return 0, false
	}
	v := binary.LittleEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v, true
}

func (d *decoder) u32() (uint32, bool) {
	if len(d.b) < 4 {
		return 0, false
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v, true
}

// bytes16 reads a u16 length and that many bytes.
func (d *decoder) bytes16() ([]byte, bool) {
	n, ok := d.u16()
	if !ok || int(n) > len(d.b) {
		return nil, false
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v, true
}

// Verify reports whether the token is signed with appKey and not expired
// now. It is VerifyAt(appKey, time.Now()).
func (t *Token) Verify(appKey string) bool {
	return t.VerifyAt(appKey, time.Now())
}

// VerifyAt reports whether the token is signed with appKey and not expired
// at now. An empty appKey never verifies.
//
// For a parsed token the HMAC is computed over the message bytes that were
// parsed, and the expiry checked is the signed one, so changing the fields
// afterwards does not change the result. For a token built with [New], the
// expected signature is the one [Token.Serialize] would produce with
// t.AppKey. The signatures are compared in constant time.
func (t *Token) VerifyAt(appKey string, now time.Time) bool {
	if appKey == "" {
		return false
	}
	msg, want, expireAt := t.msg, t.sig, t.ExpireAt
	if msg != nil {
		expireAt = binary.LittleEndian.Uint32(msg[8:headerLen]) // Parse checked the length
	} else {
		if t.AppKey == "" {
			return false
		}
		var err error
		if msg, err = t.pack(); err != nil {
			return false
		}
		want = sign(t.AppKey, msg)
	}
	if expired(expireAt, now) {
		return false
	}
	return hmac.Equal(sign(appKey, msg), want)
}

// Expired reports whether the token has an expiry and now is past it. A
// server uses it to tell an expired token from a bad signature when
// [Token.VerifyAt] fails.
func (t *Token) Expired(now time.Time) bool {
	return expired(t.ExpireAt, now)
}

func expired(expireAt uint32, now time.Time) bool {
	return expireAt > 0 && now.Unix() > int64(expireAt)
}
