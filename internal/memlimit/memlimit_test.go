package memlimit

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// TestCgroup reads the limit where each cgroup version keeps
// it, the container's own view (its cgroup at the root) too, and nothing
// from files that are missing or malformed.
func TestCgroup(t *testing.T) {
	v2 := func(limit string) fstest.MapFS { // a systemd service's cgroup
		return fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/system.slice/x.service\n")},
			"sys/fs/cgroup/system.slice/x.service/memory.max": {Data: []byte(limit + "\n")},
		}
	}
	for _, c := range []struct {
		name  string
		root  fstest.MapFS
		want  int64
		found bool
	}{
		{"v1", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("12:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n")},
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": {Data: []byte("1073741824\n")},
		}, 1 << 30, true},
		{"v1 at the root", fstest.MapFS{
			"proc/self/cgroup":                           {Data: []byte("4:memory:/docker/abc\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("2147483648\n")},
		}, 2 << 30, true},
		{"v2", v2("1073741824"), 1 << 30, true},
		{"v2 at the root", fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("3221225472\n")},
		}, 3 << 30, true},
		{"v2 max", v2("max"), 0, false},
		{"v1 unlimited", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("4:memory:/x\n")},
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, 0, false},
		{"malformed", v2("lots"), 0, false},
		{"no proc", fstest.MapFS{}, 0, false},
		{"no limit file", fstest.MapFS{"proc/self/cgroup": {Data: []byte("0::/x\n")}}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, found := Cgroup(c.root)
			require.Equal(t, c.found, found)
			require.Equal(t, c.want, got)
		})
	}
}

// TestAvailable reads MemAvailable, in kB, and nothing from a file that
// lacks it or is missing.
func TestAvailable(t *testing.T) {
	meminfo := func(s string) fstest.MapFS { return fstest.MapFS{"proc/meminfo": {Data: []byte(s)}} }
	n, ok := Available(meminfo("MemTotal:       24570408 kB\nMemFree:         1024 kB\nMemAvailable:   16191476 kB\nBuffers:  1 kB\n"))
	require.True(t, ok)
	require.Equal(t, int64(16191476)<<10, n)
	_, ok = Available(meminfo("MemTotal:       24570408 kB\n"))
	require.False(t, ok, "a kernel before 3.14 has no MemAvailable")
	_, ok = Available(meminfo("MemAvailable:   lots kB\n"))
	require.False(t, ok)
	_, ok = Available(fstest.MapFS{})
	require.False(t, ok)
}
