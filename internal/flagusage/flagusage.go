// Package flagusage prints the flags of Parley's commands (parleyd,
// parley) the way their documentation spells them.
package flagusage

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Print writes fs's flags GNU-style (--name), as the documentation spells
// them (the flag package accepts both - and --), each flag and its
// argument padded to width before the usage text.
func Print(w io.Writer, fs *flag.FlagSet, width int) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		if def := defValue(f); def != "" {
			usage += " (default " + def + ")"
		}
		fmt.Fprintf(w, "%-*s %s\n", width, line, usage)
	})
}

// defValue is f's default for the usage text: none for empty strings and
// false, durations without their zero units ("5s", "24h", not "24h0m0s").
func defValue(f *flag.Flag) string {
	def := f.DefValue
	if def == "false" {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			return ""
		}
	}
	if d, err := time.ParseDuration(def); err == nil && d != 0 && strings.HasSuffix(def, "0s") {
		if strings.HasSuffix(def, "m0s") {
			def = strings.TrimSuffix(def, "0s")
		}
		if strings.HasSuffix(def, "h0m") {
			def = strings.TrimSuffix(def, "0m")
		}
	}
	return def
}
