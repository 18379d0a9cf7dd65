// Package memlimit reads how much memory the process may use: its
// cgroup's limit (parleyd's collector, parley bench's pre-touch) and the
// machine's available memory.
package memlimit

import (
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// noLimit is where a cgroup's memory limit means none: cgroup v1 writes
// "unlimited" as the largest multiple of the page size.
const noLimit = 1 << 62

// Cgroup returns the memory limit of the process's cgroup, v2
// (memory.max) or v1 (memory.limit_in_bytes), read in root (the file
// system at /), and false when there is none or it cannot be read.
func Cgroup(root fs.FS) (int64, bool) {
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	var v1, v2 string // the process's cgroup in each hierarchy; v2's is never empty ("/" at least)
	for line := range strings.Lines(string(b)) {
		// hierarchy-ID:controller-list:path
		id, rest, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			v2 = p
		case slices.Contains(strings.Split(controllers, ","), "memory"):
			v1 = p
		}
	}
	var candidates []string
	if v1 != "" {
		candidates = append(candidates,
			path.Join("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes") // a namespace shows the cgroup at the root
	}
	if v2 != "" {
		candidates = append(candidates,
			path.Join("sys/fs/cgroup", v2, "memory.max"),
			"sys/fs/cgroup/memory.max")
	}
	for _, name := range candidates {
		b, err := fs.ReadFile(root, name)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= noLimit {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// Available returns the memory the kernel says is available to start new
// processes without swapping (MemAvailable in /proc/meminfo, read in
// root), and false when it cannot be read.
func Available(root fs.FS) (int64, bool) {
	b, err := fs.ReadFile(root, "proc/meminfo")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		// "MemAvailable:   16191476 kB"
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "MemAvailable:" || f[2] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return n << 10, true
	}
	return 0, false
}
