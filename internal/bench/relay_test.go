package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelayLatency: the relay histogram, summed over its kinds, read at
// two moments: the quantiles of what happened between them are the
// bounds of the buckets that hold them; a page without it, a restarted
// server or nothing relayed give none.
func TestRelayLatency(t *testing.T) {
	page := func(broadcast, user [4]int) string {
		var b strings.Builder
		b.WriteString("# TYPE go_goroutines gauge\ngo_goroutines 1\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1\n")
		b.WriteString("# TYPE parley_relay_latency_seconds histogram\n")
		for kind, c := range map[string][4]int{"broadcast": broadcast, "user": user} {
			for i, le := range []string{"2.5e-05", "0.0001", "0.0064", "+Inf"} {
				fmt.Fprintf(&b, "parley_relay_latency_seconds_bucket{kind=%q,le=%q} %d\n", kind, le, c[i])
			}
			fmt.Fprintf(&b, "parley_relay_latency_seconds_sum{kind=%q} 0\nparley_relay_latency_seconds_count{kind=%q} %d\n", kind, kind, c[3])
		}
		return b.String()
	}
	sample := func(p string) ServerSample {
		s, err := parseMetrics(strings.NewReader(p))
		require.NoError(t, err)
		return s
	}
	from := sample(page([4]int{10, 10, 10, 10}, [4]int{0, 0, 0, 0}))
	// Between the two: 100 relayed, 60 within 25 µs, 99 within 100 µs,
	// the last beyond 6.4 ms.
	to := sample(page([4]int{50, 85, 85, 86}, [4]int{20, 24, 24, 24}))
	r := relayLatency(from, to)
	require.NotNil(t, r)
	assert.Equal(t, uint64(100), r.Count)
	assert.InDelta(t, 0.025, float64(r.P50AtMost), 1e-9)
	assert.InDelta(t, 0.1, float64(r.P99AtMost), 1e-9)
	assert.True(t, math.IsInf(float64(r.MaxAtMost), 1))
	assert.Equal(t, "n=100, p50 ≤ 25µs, p99 ≤ 100µs, all beyond the last bucket", r.String())
	b, err := json.Marshal(r)
	require.NoError(t, err, "no infinity in JSON")
	assert.JSONEq(t, `{"count":100,"p50_at_most_ms":0.025,"p99_at_most_ms":0.1,"max_at_most_ms":null}`, string(b))
	var back RelayLatency
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, *r, back)

	assert.Nil(t, relayLatency(from, from), "nothing relayed")
	assert.Nil(t, relayLatency(to, from), "counts went back: a restarted server")
	plain := sample(strings.Split(page([4]int{}, [4]int{}), "# TYPE parley_relay")[0])
	assert.Nil(t, relayLatency(plain, plain), "not a parleyd")
}
