package rawrelay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/parleyhq/parley/internal/transport"
	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// LoadConfig is a load: Members in rooms of RoomSize, each room sending
// Rate messages a second of Payload bytes, round robin among its members,
// for Warmup and then Duration.
type LoadConfig struct {
	URL             string // the server's HTTP endpoint
	Members         int
	RoomSize        int
	Rate            float64
	Payload         int
	Warmup          time.Duration
	Duration        time.Duration
	JoinConcurrency int // offers in flight at once; 0: 32
}

// Result is what a load measured.
type Result struct {
	Members, Rooms  int
	JoinSeconds     float64 // all members' channels open
	Sent, Received  int64   // in the measured window
	Expected        int64   // deliveries Sent makes: one per other member of its room
	P50, P90, P99   float64 // delivery latency, ms
	P999, Max       float64
	ServerCPU       float64 // percent of one core, over the measured window
	LoadCPU         float64 // the load process's own, likewise
	ReceivedPerSec  float64
	LatencyOverflow int64 // deliveries beyond the histogram's range
}

func (r Result) String() string {
	return fmt.Sprintf("members %d rooms %d joined %.1fs | sent %d recv %d of %d (%.0f/s) | p50 %.2fms p90 %.2fms p99 %.2fms p999 %.2fms max %.1fms | server cpu %.1f%% load cpu %.1f%%",
		r.Members, r.Rooms, r.JoinSeconds, r.Sent, r.Received, r.Expected, r.ReceivedPerSec,
		r.P50, r.P90, r.P99, r.P999, r.Max, r.ServerCPU, r.LoadCPU)
}

// member is one load member: its PeerConnection and reliable channel.
type member struct {
	pc *webrtc.PeerConnection
	rw datachannel.ReadWriteCloser
}

// Load runs cfg against a raw relay and returns what it measured.
func Load(ctx context.Context, cfg LoadConfig) (Result, error) {
	if cfg.Members < 2 || cfg.RoomSize < 2 || cfg.Rate <= 0 || cfg.Payload < 8 || cfg.Duration <= 0 {
		return Result{}, errors.New("rawrelay: need at least 2 members, rooms of 2 or more, a rate, a payload of 8 bytes or more and a duration")
	}
	if cfg.JoinConcurrency <= 0 {
		cfg.JoinConcurrency = 32
	}
	api := transport.NewAPI(transport.Options{LoopbackOnly: true, DataOnly: true}) // the SDK's Engine's
	rooms := (cfg.Members + cfg.RoomSize - 1) / cfg.RoomSize
	members := make([]*member, cfg.Members)
	var readers sync.WaitGroup // the members' read loops
	defer func() {
		for _, m := range members {
			if m != nil {
				m.pc.Close()
			}
		}
		readers.Wait()
	}()

	var (
		start    = time.Now()
		now      = func() time.Duration { return time.Since(start) }
		mu       sync.Mutex // guards hist
		hist     = hdr.New(1, int64(60*time.Second/time.Microsecond), 3)
		measure  atomic.Int64 // the measured window's start and end, on now's clock; 0: not yet
		measureE atomic.Int64
		received atomic.Int64
		overflow atomic.Int64
	)
	inWindow := func(t time.Duration) bool {
		s, e := measure.Load(), measureE.Load()
		return s != 0 && int64(t) >= s && (e == 0 || int64(t) < e)
	}
	onMessage := func(b []byte) {
		sent, ok := readStamp(b)
		if !ok || !inWindow(sent) {
			return
		}
		received.Add(1)
		us := int64((now() - sent) / time.Microsecond)
		mu.Lock()
		if hist.RecordValue(max(us, 1)) != nil {
			overflow.Add(1)
		}
		mu.Unlock()
	}

	joinStart := time.Now()
	jctx, cancelJoins := context.WithCancel(ctx)
	defer cancelJoins()
	var (
		joins   sync.WaitGroup
		slots   = make(chan struct{}, cfg.JoinConcurrency)
		errOnce sync.Once
		joinErr error
	)
	for i := range members {
		slots <- struct{}{}
		joins.Add(1)
		go func() {
			defer func() { <-slots; joins.Done() }()
			m, err := join(jctx, api, cfg.URL, fmt.Sprintf("room-%d", i/cfg.RoomSize))
			if err != nil {
				errOnce.Do(func() { joinErr = fmt.Errorf("rawrelay: member %d: %w", i, err); cancelJoins() })
				return
			}
			members[i] = m
			readers.Add(1)
			go func() {
				defer readers.Done()
				_ = transport.ReadLoop(m.rw, onMessage)
			}()
		}()
	}
	joins.Wait()
	if joinErr != nil {
		return Result{}, joinErr
	}
	res := Result{Members: cfg.Members, Rooms: rooms, JoinSeconds: time.Since(joinStart).Seconds()}

	// Each room sends at cfg.Rate, round robin among its members; the
	// rooms' first sends are spread over one interval.
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	var sent, expected atomic.Int64
	var senders sync.WaitGroup
	sendCtx, stopSending := context.WithCancel(ctx)
	for r := range rooms {
		lo, hi := r*cfg.RoomSize, min((r+1)*cfg.RoomSize, cfg.Members)
		senders.Add(1)
		go func() {
			defer senders.Done()
			buf := make([]byte, cfg.Payload)
			next := time.Now().Add(interval * time.Duration(r) / time.Duration(rooms))
			t := time.NewTimer(time.Until(next))
			defer t.Stop()
			for k := lo; ; k++ {
				select {
				case <-sendCtx.Done():
					return
				case <-t.C:
				}
				m := members[lo+(k-lo)%(hi-lo)]
				at := now()
				stamp(buf, at)
				if _, err := m.rw.Write(buf); err == nil && inWindow(at) {
					sent.Add(1)
					expected.Add(int64(hi - lo - 1))
				}
				next = next.Add(interval)
				t.Reset(time.Until(next))
			}
		}()
	}

	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	err := wait(cfg.Warmup)
	var cpu0, load0 time.Duration
	var wall0 time.Time
	if err == nil {
		cpu0, err = serverCPU(ctx, cfg.URL)
		load0, wall0 = processCPU(), time.Now()
		measure.Store(int64(now()))
	}
	if err == nil {
		err = wait(cfg.Duration)
	}
	if err == nil {
		measureE.Store(int64(now()))
		var cpu1 time.Duration
		cpu1, err = serverCPU(ctx, cfg.URL)
		wall := time.Since(wall0)
		res.ServerCPU = 100 * float64(cpu1-cpu0) / float64(wall)
		res.LoadCPU = 100 * float64(processCPU()-load0) / float64(wall)
	}
	stopSending()
	senders.Wait()
	if err != nil {
		return res, err
	}
	// The drain: until every measured message arrived, or 5 s.
	res.Sent, res.Expected = sent.Load(), expected.Load()
	drainEnd := time.Now().Add(5 * time.Second)
	for received.Load() < res.Expected && time.Now().Before(drainEnd) {
		if err := wait(20 * time.Millisecond); err != nil {
			return res, err
		}
	}
	res.Received = received.Load()
	res.ReceivedPerSec = float64(res.Received) / cfg.Duration.Seconds()
	res.LatencyOverflow = overflow.Load()
	mu.Lock()
	ms := func(q float64) float64 { return float64(hist.ValueAtQuantile(q)) / 1000 }
	res.P50, res.P90, res.P99, res.P999 = ms(50), ms(90), ms(99), ms(99.9)
	res.Max = float64(hist.Max()) / 1000
	mu.Unlock()
	return res, nil
}

// join makes one member's PeerConnection, has the relay answer its offer
// for room, and waits for its channels to open.
func join(ctx context.Context, api *webrtc.API, base, room string) (*member, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	opened := make(chan transport.Channels, 1)
	failed := make(chan error, 1)
	dcs, err := transport.CreateChannels(pc)
	if err != nil {
		pc.Close()
		return nil, err
	}
	transport.OnOpen(dcs, func(ch transport.Channels) { opened <- ch }, func(err error) { failed <- err })
	answer, err := offer(ctx, pc, base+"/offer?room="+url.QueryEscape(room))
	if err == nil {
		err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	select {
	case ch := <-opened:
		return &member{pc: pc, rw: ch[transport.ChannelReliable]}, nil
	case err := <-failed:
		pc.Close()
		return nil, err
	case <-ctx.Done():
		pc.Close()
		return nil, ctx.Err()
	}
}

// offer sends pc's complete offer to u and returns the answer.
func offer(ctx context.Context, pc *webrtc.PeerConnection, u string) (string, error) {
	o, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(o)
	}
	if err == nil {
		err = transport.WaitGathered(ctx, pc)
	}
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewBufferString(pc.LocalDescription().SDP))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("rawrelay: offer: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return string(b), nil
}
