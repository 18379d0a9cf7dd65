package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The server's own share of the latency. parleyd keeps a histogram of
// each message's time from its arrival in the relay to its hand-off to
// the receivers' channels (parley_relay_latency_seconds). Read at the
// start and at the end of the measurement, it says how much of the
// delivery latency the relay step itself took: the rest is the
// transport (pion's loops on both sides, the kernel) and the receivers.
// The quantiles are the upper bounds of the histogram's buckets.

// relayMetric is the histogram's name; a server without it (not a
// parleyd, or an older one) gives no relay figures.
const relayMetric = "parley_relay_latency_seconds"

// bucket is one bucket of a cumulative histogram: how many observations
// were at most le seconds.
type bucket struct {
	le    float64
	count uint64
}

// relayBuckets is the histogram summed over its kinds (user, broadcast,
// outside), ascending by bound.
func relayBuckets(f *dto.MetricFamily) []bucket {
	var out []bucket
	for _, m := range f.GetMetric() {
		for _, b := range m.GetHistogram().GetBucket() {
			i := slices.IndexFunc(out, func(x bucket) bool { return x.le == b.GetUpperBound() })
			if i < 0 {
				out = append(out, bucket{le: b.GetUpperBound()})
				i = len(out) - 1
			}
			out[i].count += b.GetCumulativeCount()
		}
	}
	slices.SortFunc(out, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	return out
}

// RelayLatency is the server's relay step over the measurement, from its
// histogram: how many messages it relayed, and the bucket bounds that
// hold half, 99 % and all of them.
type RelayLatency struct {
	Count     uint64   `json:"count"`
	P50AtMost atMostMS `json:"p50_at_most_ms"`
	P99AtMost atMostMS `json:"p99_at_most_ms"`
	MaxAtMost atMostMS `json:"max_at_most_ms"`
}

// atMostMS is a bucket's upper bound in milliseconds; +Inf, beyond the
// last bucket, is null in JSON (which has no infinity).
type atMostMS float64

func (v atMostMS) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(v), 1) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(v))
}

func (v *atMostMS) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = atMostMS(math.Inf(1))
		return nil
	}
	return json.Unmarshal(b, (*float64)(v))
}

// relayLatency is the relay's figures between two samples; nil when
// either lacks the histogram, their buckets differ, or nothing was
// relayed between them.
func relayLatency(from, to ServerSample) *RelayLatency {
	if len(from.relay) == 0 || len(from.relay) != len(to.relay) {
		return nil
	}
	diff := make([]bucket, len(to.relay))
	for i, b := range to.relay {
		if from.relay[i].le != b.le || b.count < from.relay[i].count {
			return nil // another server, or a restarted one
		}
		diff[i] = bucket{le: b.le, count: b.count - from.relay[i].count}
	}
	total := diff[len(diff)-1].count // the +Inf bucket holds them all
	if total == 0 {
		return nil
	}
	atMost := func(q float64) atMostMS {
		want := uint64(math.Ceil(q * float64(total)))
		for _, b := range diff {
			if b.count >= want {
				return atMostMS(b.le * 1e3)
			}
		}
		return atMostMS(math.Inf(1))
	}
	return &RelayLatency{Count: total, P50AtMost: atMost(0.5), P99AtMost: atMost(0.99), MaxAtMost: atMost(1)}
}

// String is the summary's line: "n=8000, p50 ≤ 25µs, p99 ≤ 100µs, all ≤ 6.4ms".
func (r RelayLatency) String() string {
	d := func(ms atMostMS) string {
		if math.IsInf(float64(ms), 1) {
			return "beyond the last bucket"
		}
		return "≤ " + time.Duration(float64(ms)*float64(time.Millisecond)).String()
	}
	return fmt.Sprintf("n=%d, p50 %s, p99 %s, all %s", r.Count, d(r.P50AtMost), d(r.P99AtMost), d(r.MaxAtMost))
}
