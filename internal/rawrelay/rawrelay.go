// Package rawrelay is the floor the server-capacity rows are measured
// against: a relay that does nothing but pion's part of Parley's. Its
// server forwards each message a member sends on its reliable data channel
// to the other members of its room, straight from the reader, with
// parleyd's pion settings (the data-channel-only API, one batched UDP
// socket for every member, the same ICE timers); its load runs members in
// rooms at a rate, as `parley bench` does, and measures the delivery
// latency and the server's CPU.
//
// It has no protocol, no acks, no results, no presence, no queues and no
// resume: whatever a parleyd spends above it on the same load is Parley's
// own, and what it spends itself no change to Parley's code can save. Its
// command is cmd/rawrelay beside this file; docs/performance.md has the
// figures.
package rawrelay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/transport"
	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Server is the raw relay: an HTTP endpoint that answers offers, and the
// rooms of the PeerConnections it answered.
type Server struct {
	api  *webrtc.API
	udp  net.PacketConn
	http *http.Server
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex                      // guards rooms, pcs
	rooms map[string]map[*peer]bool       // guarded by mu
	pcs   map[*webrtc.PeerConnection]bool // guarded by mu
}

// peer is one member's reliable channel at the server.
type peer struct {
	room string
	pc   *webrtc.PeerConnection
	rw   datachannel.ReadWriteCloser
}

// Listen starts a raw relay with its HTTP endpoint on httpAddr (POST
// /offer?room=ID with an SDP offer; GET /cpu for the process's CPU seconds)
// and its ICE socket on udpAddr, both loopback addresses.
func Listen(httpAddr, udpAddr string) (*Server, error) {
	ua, err := net.ResolveUDPAddr("udp4", udpAddr)
	if err != nil {
		return nil, err
	}
	if !ua.IP.IsLoopback() {
		return nil, fmt.Errorf("rawrelay: %s is not a loopback address", udpAddr)
	}
	log := zap.NewNop()
	conn, err := transport.ListenUDP(ua, log)
	if err != nil {
		return nil, err
	}
	udp := transport.BatchUDP(conn, log)
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		udp.Close()
		return nil, err
	}
	s := &Server{
		udp: udp,
		ln:  ln,
		// parleyd's settings (internal/server's Start).
		api: transport.NewAPI(transport.Options{
			LoopbackOnly:           true,
			UDPMux:                 webrtc.NewICEUDPMux(nil, udp),
			DataOnly:               true,
			NoICEKeepalive:         true,
			ICEDisconnectedTimeout: 10 * time.Second,
			ICEFailedTimeout:       20 * time.Second,
		}),
		rooms: map[string]map[*peer]bool{},
		pcs:   map[*webrtc.PeerConnection]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /offer", s.offer)
	mux.HandleFunc("GET /cpu", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%.6f\n", processCPU().Seconds())
	})
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(ln)
	}()
	return s, nil
}

// URL is the server's HTTP endpoint, for Load.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close closes every PeerConnection and the sockets, and waits for the
// server's goroutines.
func (s *Server) Close() error {
	err := s.http.Close()
	s.mu.Lock()
	pcs := s.pcs
	s.pcs = map[*webrtc.PeerConnection]bool{}
	s.mu.Unlock()
	for pc := range pcs {
		pc.Close()
	}
	s.wg.Wait()
	return errors.Join(err, s.udp.Close())
}

// offer answers one member's offer and puts its reliable channel in the
// room once it opens.
func (s *Server) offer(w http.ResponseWriter, r *http.Request) {
	room := r.URL.Query().Get("room")
	sdp, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || room == "" {
		http.Error(w, "need a room and an SDP offer", http.StatusBadRequest)
		return
	}
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.pcs[pc] = true
	s.mu.Unlock()
	fail := func(err error) {
		s.drop(pc)
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed { // gone before or after its channel opened
			s.drop(pc)
		}
	})
	dcs, err := transport.CreateChannels(pc)
	if err != nil {
		fail(err)
		return
	}
	transport.OnOpen(dcs, func(ch transport.Channels) {
		p := &peer{room: room, pc: pc, rw: ch[transport.ChannelReliable]}
		s.mu.Lock()
		if !s.pcs[pc] { // closed meanwhile
			s.mu.Unlock()
			return
		}
		if s.rooms[room] == nil {
			s.rooms[room] = map[*peer]bool{}
		}
		s.rooms[room][p] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go s.relay(p)
	}, func(error) { s.drop(pc) })
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(sdp)}); err != nil {
		fail(err)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err == nil {
		err = transport.WaitGathered(r.Context(), pc)
	}
	if err != nil {
		fail(err)
		return
	}
	io.WriteString(w, pc.LocalDescription().SDP)
}

// relay reads p's messages and writes each to the rest of its room, on
// p's reader goroutine: the least a relay can do. When p's channel closes,
// the relay forgets p and closes its PeerConnection.
func (s *Server) relay(p *peer) {
	defer s.wg.Done()
	var others []*peer
	_ = transport.ReadLoop(p.rw, func(msg []byte) {
		others = others[:0]
		s.mu.Lock()
		for q := range s.rooms[p.room] {
			if q != p {
				others = append(others, q)
			}
		}
		s.mu.Unlock()
		for _, q := range others {
			_, _ = q.rw.Write(msg)
		}
	})
	s.mu.Lock()
	delete(s.rooms[p.room], p)
	if len(s.rooms[p.room]) == 0 {
		delete(s.rooms, p.room)
	}
	s.mu.Unlock()
	s.drop(p.pc)
}

// drop forgets pc and closes it.
func (s *Server) drop(pc *webrtc.PeerConnection) {
	s.mu.Lock()
	delete(s.pcs, pc)
	s.mu.Unlock()
	pc.Close()
}

// members counts the PeerConnections the relay holds.
func (s *Server) members() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pcs)
}

// serverCPU reads the server's CPU seconds from its /cpu.
func serverCPU(ctx context.Context, url string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/cpu", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	sec, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("rawrelay: server's /cpu: %w", err)
	}
	return time.Duration(sec * float64(time.Second)), nil
}

// stamp and readStamp put and read the send time, in nanoseconds on the
// load's clock, at the start of a payload.
func stamp(b []byte, t time.Duration) { binary.LittleEndian.PutUint64(b, uint64(t)) }

func readStamp(b []byte) (time.Duration, bool) {
	if len(b) < 8 {
		return 0, false
	}
	return time.Duration(binary.LittleEndian.Uint64(b)), true
}
