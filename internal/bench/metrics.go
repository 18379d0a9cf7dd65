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
