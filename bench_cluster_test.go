package parley_test

import (
	"testing"
	"time"

	"github.com/parleyhq/parley/parleytest"
)

// The cluster benchmarks (issue 10) measure, in one run, the same traffic
// between two members on one node and between two members on the two
// nodes of a cluster (parleytest.NewCluster: one embedded NATS server),
// and report cross/same: the ratio is the figure to read, the targets
// being a p50-ratio of at most 1.5 and a throughput-ratio of at least
// 0.7. All three members are in one room: u0 and u1 on node1, u2 on
// node2, so u0 → u1 is the same-node path and u0 → u2 the cross-node one
// (a Delivery over NATS and its DeliveryAck back). The two are measured
// alternately, so that the machine's noise falls on both alike.
//
//	go test -run '^$' -bench 'Cluster' -benchtime 3s -count 3 .

// BenchmarkClusterRoundTrip: a 64-byte reliable user message and its
// echo, u0 → u1 → u0 (same node) beside u0 → u2 → u0 (across nodes).
func BenchmarkClusterRoundTrip(b *testing.B) {
	payload := make([]byte, 64)
	h := newClusterBench(b)
	h.echo(1)
	h.echo(2)

	var same, cross []time.Duration
	for b.Loop() {
		same = append(same, h.roundTrip(b, 0, 1, payload))
		cross = append(cross, h.roundTrip(b, 0, 2, payload))
	}
	s50, s99 := percentile(same, 50), percentile(same, 99)
	c50, c99 := percentile(cross, 50), percentile(cross, 99)
	b.ReportMetric(micros(s50), "same-p50-µs")
	b.ReportMetric(micros(s99), "same-p99-µs")
	b.ReportMetric(micros(c50), "cross-p50-µs")
	b.ReportMetric(micros(c99), "cross-p99-µs")
	b.ReportMetric(float64(c50)/float64(s50), "p50-ratio")
	b.ReportMetric(float64(c99)/float64(s99), "p99-ratio")
}

// BenchmarkClusterThroughput: one-way 1 KiB reliable user messages,
// counted when the receiver's callback has them, u0 → u1 (same node)
// beside u0 → u2 (across nodes), in batches of 500.
func BenchmarkClusterThroughput(b *testing.B) {
	const size, batch = 1 << 10, 500
	payload := make([]byte, size)
	h := newClusterBench(b)

	var same, cross time.Duration
	var n int
	for b.Loop() {
		same += h.oneWay(b, 0, 1, payload, batch)
		cross += h.oneWay(b, 0, 2, payload, batch)
		n += batch
	}
	sameMsgs := float64(n) / same.Seconds()
	crossMsgs := float64(n) / cross.Seconds()
	b.ReportMetric(sameMsgs, "same-msgs/s")
	b.ReportMetric(crossMsgs, "cross-msgs/s")
	b.ReportMetric(crossMsgs*size/1e6, "cross-MB/s")
	b.ReportMetric(crossMsgs/sameMsgs, "throughput-ratio")
}

// newClusterBench is a 2-node cluster and one room of three members: u0
// and u1 on node1, u2 on node2.
func newClusterBench(b *testing.B) *benchHarness {
	b.Helper()
	c := parleytest.NewCluster(b, 2)
	return newBenchHarnessOn(b, []*parleytest.Server{c.Nodes[0], c.Nodes[0], c.Nodes[1]})
}
