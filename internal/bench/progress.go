package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// scraper holds a run's scrapes of the server's /metrics.
type scraper struct {
	url    string
	client *http.Client

	// Taken by Run's goroutine, read after the progress goroutine has
	// stopped.
	before, joined, start, end ServerSample

	mu     sync.Mutex
	errors int // guarded by mu
}

// scrape takes one sample; a failure is counted and gives a zero sample.
func (sc *scraper) scrape(ctx context.Context) ServerSample {
	s, err := Scrape(ctx, sc.client, sc.url)
	if err != nil {
		sc.mu.Lock()
		sc.errors++
		sc.mu.Unlock()
	}
	return s
}

func (sc *scraper) summary(members int) *ServerSummary {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	out := &ServerSummary{
		MetricsURL: sc.url, Before: sc.before, Joined: sc.joined, MeasureStart: sc.start, End: sc.end,
		Members: members, Errors: sc.errors,
	}
	if !sc.joined.At.IsZero() {
		v := cpuPercent(sc.before, sc.joined)
		out.JoinCPUPercent = &v
	}
	end := sc.end
	if end.At.IsZero() { // interrupted before the measurement, or the scrape failed: the joins' figures
		end = sc.joined
	}
	out.End = end
	if !sc.start.At.IsZero() && !sc.end.At.IsZero() {
		v := cpuPercent(sc.start, sc.end)
		out.CPUPercent = &v
		out.RelayLatency = relayLatency(sc.start, sc.end)
	}
	if members > 0 && !end.At.IsZero() {
		n := float64(members)
		out.RSSPerMember = (end.RSSBytes - sc.before.RSSBytes) / n
		out.GoroutinesPerMember = (end.Goroutines - sc.before.Goroutines) / n
		out.HeapPerMember = (end.HeapInuseBytes - sc.before.HeapInuseBytes) / n
	}
	return out
}

// Progress intervals.
const (
	terminalInterval      = time.Second
	defaultPlainInterval  = 5 * time.Second
	progressScrapeTimeout = 900 * time.Millisecond
)

// startProgress writes progress lines until the returned stop is called
// (stop may be called more than once). On a terminal one line is
// rewritten in place every second and erased at the end; otherwise a
// plain line is written every PlainInterval.
func (r *runner) startProgress(p Progress, sc *scraper) (stop func()) {
	if p.W == nil {
		return func() {}
	}
	interval := terminalInterval
	if !p.Terminal {
		interval = p.PlainInterval
		if interval <= 0 {
			interval = defaultPlainInterval
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		last := progressSample{at: time.Now(), cpu: processCPU()}
		if sc != nil {
			last.server = sc.before
		}
		for {
			select {
			case <-done:
				if p.Terminal {
					fmt.Fprint(p.W, "\r\033[K")
				}
				return
			case <-t.C:
			}
			line, next := r.progressLine(last, sc)
			last = next
			if p.Terminal {
				fmt.Fprintf(p.W, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(p.W, line)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// progressSample is what the previous progress line saw.
type progressSample struct {
	at              time.Time
	cpu             time.Duration
	sent, delivered int64
	server          ServerSample
}

// progressLine is one progress line: phase, joins, messages per second in
// the last interval, that interval's delivery latency, the server's and
// the load process's CPU.
func (r *runner) progressLine(last progressSample, sc *scraper) (string, progressSample) {
	now := progressSample{
		at:        time.Now(),
		cpu:       processCPU(),
		sent:      r.rec.sentAll.Load(),
		delivered: r.rec.deliveredAll.Load(),
	}
	dt := now.at.Sub(last.at).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s joined %d/%d", r.getPhase(), r.joins.count(), r.joinTarget())
	if r.peers != nil {
		fmt.Fprintf(&b, " (peers %d/%d)", r.peers.count(), r.cfg.Rooms)
	}
	fmt.Fprintf(&b, " | sent %s/s recv %s/s", num(float64(now.sent-last.sent)/dt), num(float64(now.delivered-last.delivered)/dt))
	if p50, p99, n := r.rec.windowPercentiles(); n > 0 {
		fmt.Fprintf(&b, " | p50 %s p99 %s", ms(p50.Seconds()*1e3), ms(p99.Seconds()*1e3))
	}
	if sc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), progressScrapeTimeout)
		s, err := Scrape(ctx, sc.client, sc.url)
		cancel()
		if err == nil {
			if !last.server.At.IsZero() {
				fmt.Fprintf(&b, " | server cpu %.0f%%", cpuPercent(last.server, s))
			}
			fmt.Fprintf(&b, " rss %s", bytesIEC(s.RSSBytes))
			now.server = s
		} else {
			b.WriteString(" | server ?")
		}
	}
	fmt.Fprintf(&b, " | load cpu %.0f%%", 100*(now.cpu-last.cpu).Seconds()/dt)
	return b.String(), now
}

// joinTarget is how many joins the progress line counts towards.
func (r *runner) joinTarget() int {
	if r.cfg.Mode == ModeBot {
		return r.cfg.Rooms
	}
	return r.cfg.Members
}

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
