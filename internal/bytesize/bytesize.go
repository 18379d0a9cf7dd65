// Package bytesize reads and writes sizes in bytes the way Go's GOMEMLIMIT
// does: decimal digits and an optional suffix B, KiB, MiB, GiB or TiB.
// parley bench's --gc-budget and parleyd's memory_limit take them.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrSyntax is what Parse reports for a malformed size.
var ErrSyntax = errors.New("want a number of bytes with an optional suffix B, KiB, MiB, GiB or TiB, as GOMEMLIMIT takes, e.g. 8GiB")

// units are the suffixes GOMEMLIMIT accepts, largest first.
var units = []struct {
	suffix string
	size   int64
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"B", 1},
}

// Parse reads a size the way GOMEMLIMIT does: decimal digits and an
// optional suffix B, KiB, MiB, GiB or TiB, nothing else.
func Parse(s string) (int64, error) {
	digits, unit := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			digits, unit = strings.TrimSuffix(s, u.suffix), u.size
			break
		}
	}
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, ErrSyntax
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("%s is too large", s)
	}
	return n * unit, nil
}

// Format prints n in the largest unit that divides it, as Parse reads it
// back: 8GiB, 1536MiB, 100B.
func Format(n int64) string {
	for _, u := range units {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
