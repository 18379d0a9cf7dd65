package bytesize

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"0":       0,
		"123":     123,
		"100B":    100,
		"1KiB":    1 << 10,
		"64MiB":   64 << 20,
		"1536MiB": 1536 << 20,
		"8GiB":    8 << 30,
		"2TiB":    2 << 40,
		"007GiB":  7 << 30,
	} {
		got, err := Parse(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{
		"", "B", "GiB", "off", "8GB", "8G", "8gib", "8 GiB", " 8GiB", "8GiB ",
		"-1GiB", "+1GiB", "1.5GiB", "8GiBB", "8iB", "0x10", "1e9",
		"9223372036854775808", // one more than MaxInt64
		"8388608TiB",          // 2^63 bytes
	} {
		_, err := Parse(in)
		assert.Error(t, err, "%q", in)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 100: "100B", 1 << 10: "1KiB", 1536 << 20: "1536MiB", 8 << 30: "8GiB", 3 << 40: "3TiB", 1<<30 + 1: "1073741825B",
	} {
		assert.Equal(t, want, Format(n))
		back, err := Parse(want)
		require.NoError(t, err, want)
		assert.Equal(t, n, back, "%s reads back", want)
	}
}
