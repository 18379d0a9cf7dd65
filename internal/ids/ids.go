// Package ids checks room IDs, user IDs and extra info against the limits
// that the SDK and the server both enforce.
package ids

import "fmt"

const (
	// MaxIDLen is the longest room or user ID, in bytes.
	MaxIDLen = 128
	// MaxExtraInfo is the longest UserInfo.ExtraInfo, in bytes.
	MaxExtraInfo = 200
)

// Check reports whether id matches ^[a-zA-Z0-9_@\-.]{1,128}$. what names the
// ID in the error ("room ID", "user ID").
func Check(what, id string) error {
	if id == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%s is %d bytes, over %d", what, len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !legal(id[i]) {
			return fmt.Errorf("%s %q has illegal character %q at %d (allowed: a-z A-Z 0-9 _ @ - .)", what, id, id[i], i)
		}
	}
	return nil
}

// CheckExtraInfo reports whether extra info fits in MaxExtraInfo bytes.
func CheckExtraInfo(info string) error {
	if len(info) > MaxExtraInfo {
		return fmt.Errorf("extra info is %d bytes, over %d", len(info), MaxExtraInfo)
	}
	return nil
}

func legal(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '_' || c == '@' || c == '-' || c == '.'
}
