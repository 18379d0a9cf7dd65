package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ServerSample is one scrape of the server's /metrics: the Go and process
// collectors' figures the summary reports.
type ServerSample struct {
	At             time.Time `json:"-"`
	CPUSeconds     float64   `json:"cpu_seconds"`      // process_cpu_seconds_total
	RSSBytes       float64   `json:"rss_bytes"`        // process_resident_memory_bytes
	Goroutines     float64   `json:"goroutines"`       // go_goroutines
	HeapInuseBytes float64   `json:"heap_inuse_bytes"` // go_memstats_heap_inuse_bytes

	relay []bucket // parley_relay_latency_seconds, summed over kinds; none without it (relay.go)
}

// maxMetricsBody bounds what a scrape reads.
const maxMetricsBody = 16 << 20

// scrapeTimeout bounds one scrape.
const scrapeTimeout = 5 * time.Second

// Scrape fetches url, a Prometheus text exposition, and returns the
// server's CPU time, resident memory, goroutines and heap in use. A
// metric missing from the page is an error: the server registers the Go
// and process collectors, so their absence means a wrong URL.
func Scrape(ctx context.Context, client *http.Client, url string) (ServerSample, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ServerSample{}, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return ServerSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ServerSample{}, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	s, err := parseMetrics(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		return ServerSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	s.At = time.Now()
	return s, nil
}

// parseMetrics reads a text exposition and picks out ServerSample's
// metrics.
func parseMetrics(r io.Reader) (ServerSample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return ServerSample{}, err
	}
	var s ServerSample
	for _, m := range []struct {
		name string
		to   *float64
	}{
		{"process_cpu_seconds_total", &s.CPUSeconds},
		{"process_resident_memory_bytes", &s.RSSBytes},
		{"go_goroutines", &s.Goroutines},
		{"go_memstats_heap_inuse_bytes", &s.HeapInuseBytes},
	} {
		f, ok := families[m.name]
		if !ok || len(f.GetMetric()) == 0 {
			return ServerSample{}, fmt.Errorf("no %s in the metrics", m.name)
		}
		*m.to = value(f.GetMetric()[0])
	}
	if f, ok := families[relayMetric]; ok {
		s.relay = relayBuckets(f)
	}
	return s, nil
}

// value is a counter's, gauge's or untyped metric's value.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

// cpuPercent is the server's CPU use between two samples, in percent of
// one core.
func cpuPercent(from, to ServerSample) float64 {
	wall := to.At.Sub(from.At).Seconds()
	if wall <= 0 {
		return 0
	}
	return 100 * (to.CPUSeconds - from.CPUSeconds) / wall
}

// A server still growing. A fresh server's heap grows until its
// collections reach their steady size (parleyd runs at GOGC=450, so the
// heap grows to several times what is live, over its first collections),
// and every page it grows into is a page fault; on a VM with costly page
// faults that costs the server a tenth of its core or more, which its
// steady state does not pay. Measured on the VM of docs/performance.md,
// 1,000 members: with a 5 s warm-up the server's RSS doubled during the
// measurement and it used 62–75 % of its core; with 40 s, flat RSS and
// 53–54 %.

// growthWarnRatio and growthWarnBytes: the RSS growth during the
// measurement that gets a warning, both at once.
const (
	growthWarnRatio = 1.25
	growthWarnBytes = 64 << 20
)

// serverGrowthWarning says, when the server's RSS grew much during the
// measurement, that its figures include that growth, and how to measure
// its steady state; "" when it did not.
func serverGrowthWarning(sv *ServerSummary, warmup time.Duration) string {
	from, to := sv.MeasureStart.RSSBytes, sv.End.RSSBytes
	if sv.MeasureStart.At.IsZero() || sv.End.At.IsZero() || to < from*growthWarnRatio || to-from < growthWarnBytes {
		return ""
	}
	return fmt.Sprintf("the server's RSS grew from %s to %s while measuring: its heap was still growing into fresh memory (page faults; parleyd's first collections), which costs CPU and latency its steady state does not pay; a longer --warmup than %v (until the server has collected a few times: 40s for 1,000 members) measures the steady state",
		bytesIEC(from), bytesIEC(to), warmup)
}
