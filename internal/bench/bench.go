// Package bench is `parley bench`, a load generator for any parleyd: many
// Engines in rooms broadcasting (rooms mode), or one Engine in many rooms
// exchanging round trips with a peer in each (bot mode). It reports join
// times, delivery latency (HDR histograms), message counts, send results,
// and, given the server's /metrics, the server's CPU and memory.
//
// It uses only the public SDK (package parley) and package token.
// Run drives one benchmark; cmd/parley wires it to a command line.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/token"
)

// Phases of a run, as the summary's Phase names them.
const (
	phaseJoin    = "join"
	phaseWarmup  = "warmup"
	phaseMeasure = "measure"
	phaseDrain   = "drain"
	phaseDone    = "done"
)

// fdsPerEngine estimates the descriptors one Engine holds: its signaling
// TCP connection and its ICE UDP socket (two, measured with a loopback
// server), and a margin.
const fdsPerEngine = 3

// closeConcurrency bounds the Engines closing at once at the end.
const closeConcurrency = 64

// drainPoll is how often the drain checks whether everything has arrived.
const drainPoll = 20 * time.Millisecond

// Progress says where a run's progress lines go.
type Progress struct {
	W io.Writer // nil: none
	// Terminal rewrites one line in place every second; otherwise a plain
	// line is written every PlainInterval.
	Terminal      bool
	PlainInterval time.Duration // default 5s
}

// room is one room of the run and who in it may send.
type room struct {
	index   int
	id      string
	members []*member // joined: the senders, in turn
	size    int       // members meant to be in it
}

// runner is one run's state.
type runner struct {
	cfg  Config
	rec  *recorder
	opts []parley.Option

	phase   atomic.Value // string
	active  atomic.Bool  // the run is on: a member leaving now is counted
	joins   *joinRecorder
	peers   *joinRecorder // bot mode
	late    atomic.Int64
	engines []*engine // every Engine, closed at the end; guarded by mu
	mu      sync.Mutex
}

func (r *runner) running() bool     { return r.active.Load() }
func (r *runner) setPhase(p string) { r.phase.Store(p) }
func (r *runner) getPhase() string  { return r.phase.Load().(string) }

// Run runs one benchmark against cfg's server and returns its summary.
// Cancelling ctx (SIGINT) ends the run early: what ran is summarised and
// Summary.Interrupted is set. An error means nothing ran: a bad
// configuration, or a metrics URL that does not answer.
func Run(ctx context.Context, cfg Config, progress Progress) (*Summary, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	clk := clock{base: time.Now()}
	r := &runner{cfg: cfg, rec: newRecorder(clk), joins: newJoinRecorder()}
	r.setPhase(phaseJoin)
	r.active.Store(true)
	if cfg.loopback() {
		r.opts = append(r.opts, parley.WithLoopbackOnly())
	}
	s := &Summary{
		Mode:    cfg.Mode,
		URL:     cfg.URL,
		Started: time.Now(),
		Settings: Settings{
			Rate: cfg.Rate, Payload: cfg.Payload, Engines: cfg.engines(),
			WarmupSeconds: cfg.Warmup.Seconds(), DurationSeconds: cfg.Duration.Seconds(),
			JoinConcurrency: cfg.JoinConcurrency,
			GCBudgetBytes:   cfg.GCBudget, GCEnv: gcEnv(),
		},
		Load: LoadSummary{Engines: cfg.engines(), GOMAXPROCS: runtime.GOMAXPROCS(0)},
	}
	if cfg.Mode == ModeRooms {
		s.Settings.Members, s.Settings.RoomSize = cfg.Members, cfg.RoomSize
		s.Settings.Rooms = (cfg.Members + cfg.RoomSize - 1) / cfg.RoomSize
		s.Settings.Sender = "members take turns"
	} else {
		s.Settings.Rooms, s.Settings.PeerRooms = cfg.Rooms, cfg.PeerRooms
		s.Settings.Sender = "the bot sends, the peer echoes"
		r.peers = newJoinRecorder()
	}
	s.FDLimit = raiseFileLimit(uint64(cfg.engines())*fdsPerEngine + 256)

	var sc *scraper
	if cfg.MetricsURL != "" {
		sc = &scraper{url: cfg.MetricsURL, client: &http.Client{}}
		before, err := Scrape(ctx, sc.client, sc.url)
		if err != nil {
			return nil, fmt.Errorf("--metrics: %w", err)
		}
		sc.before = before
	}
	defer func() {
		if sc != nil {
			sc.client.CloseIdleConnections()
		}
	}()

	var prof *os.File
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		prof = f
	}

	if cfg.GCBudget > 0 && cfg.Pretouch && ctx.Err() == nil {
		n, note := pretouchBytes(cfg.GCBudget, os.DirFS("/"))
		if progress.W != nil {
			fmt.Fprintf(progress.W, "pre-touching %s of the gc budget (--pretouch=false: don't)\n", bytesIEC(float64(n)))
		}
		touched, took := pretouch(ctx, n)
		s.Load.PretouchBytes, s.Load.PretouchSeconds, s.Load.PretouchNote = touched, took.Seconds(), note
		if sc != nil {
			sc.before = sc.scrape(ctx) // the server's figures while joining start now
		}
	}
	defer setGCBudget(cfg.GCBudget)()

	stopProgress := r.startProgress(progress, sc)
	defer stopProgress()

	// Join.
	cpu0, wall0 := processCPU(), time.Now()
	rooms := r.joinAll(ctx)
	s.Load.JoinCPUPercent = cpuPercentSince(cpu0, wall0)
	if sc != nil {
		sc.joined = sc.scrape(ctx)
	}

	// Warm up, then measure.
	var winStart, winEnd int64
	if ctx.Err() == nil {
		sendCtx, stopSending := context.WithCancel(ctx)
		var senders sync.WaitGroup
		for _, rm := range rooms {
			if len(rm.members) == 0 || (cfg.Mode == ModeRooms && len(rm.members) < 2) {
				continue
			}
			senders.Go(func() { r.sendLoop(sendCtx, rm, len(rooms)) })
		}
		r.setPhase(phaseWarmup)
		sleep(ctx, cfg.Warmup)
		if ctx.Err() == nil {
			r.setPhase(phaseMeasure)
			if sc != nil {
				sc.start = sc.scrape(ctx)
			}
			stopProfile := startProfile(prof)
			cpu0, wall0 = processCPU(), time.Now()
			gc0 := readGC()
			wait0, waitOK := runqueueWait()
			winStart = clk.now()
			r.rec.winStart.Store(winStart)
			r.rec.winEnd.Store(math.MaxInt64)
			sleep(ctx, cfg.Duration)
			winEnd = clk.now()
			r.rec.winEnd.Store(winEnd)
			s.Load.CPUPercent = cpuPercentSince(cpu0, wall0)
			if err := stopProfile(); err != nil {
				s.Warnings = append(s.Warnings, "--cpuprofile: "+err.Error())
			}
			gc := readGC().since(gc0)
			s.Load.GCCycles, s.Load.GCCPUSeconds = int64(gc.cycles), gc.cpuSeconds
			if wait1, ok := runqueueWait(); ok && waitOK {
				s.Load.RunqueueWaitPercent = 100 * float64(wait1-wait0) / float64(time.Since(wall0))
			}
			if sc != nil {
				sc.end = sc.scrape(context.WithoutCancel(ctx))
			}
		}
		stopSending()
		senders.Wait()
	}

	// Drain: results and deliveries in flight.
	phaseReached := r.getPhase()
	r.setPhase(phaseDrain)
	deadline := time.Now().Add(cfg.Drain)
	for !r.rec.drained() && time.Now().Before(deadline) {
		time.Sleep(drainPoll) // polling the counters, bounded by the deadline
	}
	r.active.Store(false)
	stopProgress()
	r.closeAll()

	if ctx.Err() != nil {
		s.Interrupted = true
		s.Phase = phaseReached
	} else {
		s.Phase = phaseDone
	}
	s.Load.MaxRSSBytes = maxRSS()
	s.Load.LateSends = r.late.Load()
	r.summarise(s, winStart, winEnd, sc)
	return s, nil
}

// startProfile starts a CPU profile into f, if f is not nil; the function
// it returns stops it and reports what failed (another profile already
// running, or the write).
func startProfile(f *os.File) (stop func() error) {
	if f == nil {
		return func() error { return nil }
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return func() error { return err }
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Sync()
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func cpuPercentSince(cpu0 time.Duration, wall0 time.Time) float64 {
	wall := time.Since(wall0)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(processCPU()-cpu0) / float64(wall)
}

// newEngine starts one Engine of the run.
func (r *runner) newEngine() (*engine, error) {
	e, err := parley.NewEngine(parley.EngineConfig{AppID: r.cfg.AppID, ServerURL: r.cfg.URL}, nil, r.opts...)
	if err != nil {
		return nil, err
	}
	g := newEngine(e, r.rec)
	r.mu.Lock()
	r.engines = append(r.engines, g)
	r.mu.Unlock()
	return g, nil
}

// token mints a room token for user in roomID, valid a day.
func (r *runner) token(roomID, user string) (string, error) {
	t := token.New(r.cfg.AppID, r.cfg.AppKey, roomID, user)
	expire := time.Now().Add(24 * time.Hour)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	return t.Serialize()
}

func (r *runner) roomID(i int) string { return fmt.Sprintf("%s-%d", r.cfg.RoomPrefix, i) }

// joinAll joins every member (rooms mode), or every peer and then the bot
// (bot mode), at most JoinConcurrency at a time, and returns the rooms
// with their joined senders.
func (r *runner) joinAll(ctx context.Context) []*room {
	cfg := r.cfg
	if cfg.Mode == ModeRooms {
		n := (cfg.Members + cfg.RoomSize - 1) / cfg.RoomSize
		rooms := make([]*room, n)
		for i := range rooms {
			rooms[i] = &room{index: i, id: r.roomID(i), size: min(cfg.RoomSize, cfg.Members-i*cfg.RoomSize)}
		}
		joined := make([]*member, cfg.Members)
		r.bounded(ctx, cfg.Members, func(i int) {
			rm := rooms[i/cfg.RoomSize]
			user := fmt.Sprintf("u%d", i)
			g, err := r.newEngine()
			if err != nil {
				r.joins.attempt()
				r.joins.fail("error: " + err.Error())
				return
			}
			m := newMember(g, r, rm.index, user, "", roleMember)
			if r.join(ctx, r.joins, g, m, rm.id) {
				joined[i] = m
			}
		})
		for i, m := range joined {
			if m != nil {
				rm := rooms[i/cfg.RoomSize]
				rm.members = append(rm.members, m)
			}
		}
		return rooms
	}

	// Bot mode: the peers first, PeerRooms rooms per peer Engine, so that
	// the bot's joins are measured against rooms that have someone in them.
	rooms := make([]*room, cfg.Rooms)
	for i := range rooms {
		rooms[i] = &room{index: i, id: r.roomID(i), size: 2}
	}
	const botID = "bot"
	peerEngines := (cfg.Rooms + cfg.PeerRooms - 1) / cfg.PeerRooms
	peerOK := make([]bool, cfg.Rooms) // each joiner writes its own element
	engines := make([]*engine, peerEngines)
	for k := range engines {
		g, err := r.newEngine()
		if err != nil {
			r.peers.attempt()
			r.peers.fail("error: " + err.Error())
			continue
		}
		engines[k] = g
	}
	r.bounded(ctx, cfg.Rooms, func(i int) {
		g := engines[i/cfg.PeerRooms]
		if g == nil {
			return
		}
		user := fmt.Sprintf("p%d", i/cfg.PeerRooms)
		m := newMember(g, r, i, user, botID, rolePeer)
		peerOK[i] = r.join(ctx, r.peers, g, m, rooms[i].id)
	})
	bot, err := r.newEngine()
	if err != nil {
		r.joins.attempt()
		r.joins.fail("error: " + err.Error())
		return rooms
	}
	botMembers := make([]*member, cfg.Rooms)
	r.bounded(ctx, cfg.Rooms, func(i int) {
		if !peerOK[i] { // the peers' bounded has returned: no race
			return
		}
		peer := fmt.Sprintf("p%d", i/cfg.PeerRooms)
		m := newMember(bot, r, i, botID, peer, roleBot)
		if r.join(ctx, r.joins, bot, m, rooms[i].id) {
			botMembers[i] = m
		}
	})
	for i, m := range botMembers {
		if m != nil {
			rooms[i].members = []*member{m}
		}
	}
	return rooms
}

// bounded runs f(0) … f(n-1), at most JoinConcurrency at a time, and
// returns when all have returned; once ctx is done it starts no more.
func (r *runner) bounded(ctx context.Context, n int, f func(i int)) {
	sem := make(chan struct{}, r.cfg.JoinConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// join joins m to roomID on g and waits for the outcome, recording it in
// jr; true once joined. A member that failed or timed out leaves the room,
// so that it receives nothing the run does not expect.
func (r *runner) join(ctx context.Context, jr *joinRecorder, g *engine, m *member, roomID string) bool {
	jr.attempt()
	tok, err := r.token(roomID, m.userID)
	if err != nil {
		jr.fail("error: " + err.Error())
		return false
	}
	rm, err := g.e.CreateRoom(roomID, m)
	if err != nil {
		jr.fail("error: " + err.Error())
		return false
	}
	m.room = rm
	start := time.Now()
	if err := rm.JoinRoom(tok, parley.UserInfo{UserID: m.userID}, parley.RoomConfig{}); err != nil {
		jr.fail("error: " + err.Error())
		_ = rm.Close()
		return false
	}
	t := time.NewTimer(r.cfg.JoinTimeout)
	defer t.Stop()
	select {
	case res := <-m.joinedCh:
		if res.state == 0 {
			jr.ok(res.at.Sub(start), res.at)
			return true
		}
		jr.fail(parley.ErrorCode(res.state).String())
	case <-t.C:
		jr.fail("timeout")
	case <-ctx.Done():
		jr.fail("interrupted")
	}
	_ = rm.Close()
	return false
}

// sendLoop sends rm's messages at Rate per second until ctx is done. The
// rooms' schedules are staggered over one interval, so that n rooms do
// not all send at the same instant. A tick more than one interval late is
// skipped and counted (LoadSummary.LateSends): the rate is an upper bound
// the load process may fail to keep, and the summary says so.
func (r *runner) sendLoop(ctx context.Context, rm *room, n int) {
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	next := time.Now().Add(interval * time.Duration(rm.index) / time.Duration(n))
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for seq := uint32(0); ; seq++ {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		r.sendOne(rm, seq)
		next = next.Add(interval)
		if behind := time.Since(next); behind > interval {
			skip := int64(behind / interval)
			r.late.Add(skip)
			next = next.Add(time.Duration(skip) * interval)
		}
		t.Reset(time.Until(next))
	}
}

// sendOne sends message seq of room rm: a broadcast by the member whose
// turn it is, or the bot's message to the room's peer.
func (r *runner) sendOne(rm *room, seq uint32) {
	m := rm.members[int(seq)%len(rm.members)]
	now := r.rec.clk.now()
	measured := r.rec.measured(now)
	payload := make([]byte, r.cfg.Payload)
	header{sent: now, room: uint32(rm.index), seq: seq, measured: measured}.put(payload)
	if m.role == roleBot {
		m.g.send(sendInfo{kind: sendToPeer, measured: measured, receivers: 1}, func() int64 {
			return m.room.SendUserBinaryMessage(m.other, payload, parley.MessageConfigReliableOrdered)
		})
		return
	}
	m.g.send(sendInfo{kind: sendBroadcast, measured: measured, receivers: len(rm.members) - 1}, func() int64 {
		return m.room.SendRoomBinaryMessage(payload)
	})
}

// closeAll closes every Engine, closeConcurrency at a time, and waits for
// their last callbacks.
func (r *runner) closeAll() {
	r.mu.Lock()
	engines := r.engines
	r.engines = nil
	r.mu.Unlock()
	sem := make(chan struct{}, closeConcurrency)
	var wg sync.WaitGroup
	for _, g := range engines {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = g.e.Close()
			<-g.e.Done()
		})
	}
	wg.Wait()
}

// summarise fills in s from the recorders.
func (r *runner) summarise(s *Summary, winStart, winEnd int64, sc *scraper) {
	rec := r.rec
	s.Joins = r.joins.summary()
	if r.peers != nil {
		p := r.peers.summary()
		s.PeerJoins = &p
	}
	if winEnd > winStart {
		s.MeasuredSeconds = time.Duration(winEnd - winStart).Seconds()
	}
	m := &s.Messages
	m.Sent, m.Expected, m.Delivered = rec.sent.Load(), rec.expected.Load(), rec.delivered.Load()
	m.Possible = rec.possible.Load()
	m.Lost = max(0, m.Expected-m.Delivered)
	m.NoResult = rec.inflight.Load()
	m.NotSent = rec.notSent.Load()
	m.EchoesSent, m.EchoesExpected, m.RoundTrips = rec.echoSent.Load(), rec.echoExpected.Load(), rec.roundTrip.Load()
	if s.MeasuredSeconds > 0 {
		m.SentPerSecond = float64(m.Sent) / s.MeasuredSeconds
		m.DeliveredPerSecond = float64(m.Delivered) / s.MeasuredSeconds
		m.RoundTripsPerSecond = float64(m.RoundTrips) / s.MeasuredSeconds
	}
	rec.mu.Lock()
	s.Latency = percentiles(rec.latency)
	if r.cfg.Mode == ModeBot {
		rt := percentiles(rec.rtt)
		s.RoundTrip = &rt
		s.EchoResults = copyMap(rec.echoResults)
	}
	s.SendResults = copyMap(rec.results)
	s.MembersLeft = copyMap(rec.lost)
	rec.mu.Unlock()

	if s.Load.LateSends > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the load process fell behind the send schedule %d times: the rate achieved is below the one asked for", s.Load.LateSends))
	}
	if w := gcWarning(s.Load, r.cfg.GCBudget); w != "" {
		s.Warnings = append(s.Warnings, w)
	}
	if m.NoResult > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%d sends had no result when the drain ended (--drain %v)", m.NoResult, r.cfg.Drain))
	}
	if sc != nil {
		members := s.Joins.Joined
		if s.PeerJoins != nil {
			members += s.PeerJoins.Joined
		}
		s.Server = sc.summary(members)
		if w := serverGrowthWarning(s.Server, r.cfg.Warmup); w != "" {
			s.Warnings = append(s.Warnings, w)
		}
	}
}

func copyMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (j *joinRecorder) summary() Joins {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := Joins{Attempted: j.attempts, Joined: j.joined, Failed: copyMap(j.failed), Latency: percentiles(j.latency)}
	if !j.last.IsZero() {
		out.AllJoinedSeconds = j.last.Sub(j.first).Seconds()
	}
	return out
}

// WriteJSON prints s as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
