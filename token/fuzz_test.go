package token

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzParse checks that Parse never panics, that it accepts only canonical
// strings, and that a parsed token survives being re-encoded and re-signed.
func FuzzParse(f *testing.F) {
	login := vectorToken()
	login.RoomID = ""
	wildcard := vectorToken()
	wildcard.RoomID = "*"
	wildcard.Privileges = nil
	seeds := []string{vecToken}
	for _, tok := range []*Token{login, wildcard} {
		raw, err := tok.Serialize()
		require.NoError(f, err)
		seeds = append(seeds, raw)
	}
	unsorted := buildMsg(1, 2, 3, "room", "user", [][2]uint32{{4, 7}, {0, 5}, {4, 9}})
	flipped := []byte(vecToken)
	flipped[40] ^= 0x01
	seeds = append(seeds,
		"",
		version,
		version+vecAppID,
		vecToken[:len(vecToken)-4],
		vecToken+"AAAA",
		string(flipped),
		encode(vecAppID, unsorted, sign(vecAppKey, unsorted)),
		rawContent([]byte{0xff, 0xff, 0, 0}),
		rawContent(append(appendString(nil, unsorted[:24]), 0x20, 0)),
	)
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := Parse(raw)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			require.Nil(t, tok)
			return
		}
		require.Len(t, tok.AppID, appIDLen)
		require.Len(t, tok.sig, sigLen)
		require.Empty(t, tok.AppKey)
		tok.VerifyAt(vecAppKey, time.Unix(0, 0)) // must not panic

		// The parsed fields with the parsed msg encode back to raw exactly,
		// and that parses to the same fields.
		again := encode(tok.AppID, tok.msg, tok.sig)
		require.Equal(t, raw, again)
		tok2, err := Parse(again)
		require.NoError(t, err)
		requireFields(t, tok, tok2)
		require.Equal(t, tok.msg, tok2.msg)
		require.Equal(t, tok.sig, tok2.sig)

		// Re-signing the parsed fields gives a token with the same fields
		// that verifies with the new key.
		const key = "fuzz key"
		tok.AppKey = key
		resigned, err := tok.Serialize()
		require.NoError(t, err)
		tok3, err := Parse(resigned)
		require.NoError(t, err)
		requireFields(t, tok, tok3)
		require.True(t, tok3.VerifyAt(key, time.Unix(0, 0)))
		require.Equal(t, tok3.ExpireAt > 0, !tok3.VerifyAt(key, time.Unix(1<<33, 0)))
	})
}
