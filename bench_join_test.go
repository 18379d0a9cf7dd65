package parley_test

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/internal/transport"
	"github.com/parleyhq/parley/parleytest"
)

// BenchmarkJoin measures a Parley join, NewEngine to OnRoomStateChanged(0),
// beside a raw pion setup in the same process: two PeerConnections on
// loopback with the same three negotiated data channels, offer and answer
// handed over in memory, until every channel is open on both ends. The
// ratio join/pion is what to read; absolute times on a shared machine are
// noise. A relay join adds a WebSocket connect and one signaling round trip.
//
//	go test -run '^$' -bench BenchmarkJoin -benchtime 30x .
func BenchmarkJoin(b *testing.B) {
	srv := parleytest.NewServer(b)
	api := transport.NewAPI(transport.Options{LoopbackOnly: true, UnbatchedUDP: true})
	var joins, raws []time.Duration
	for i := 0; b.Loop(); i++ {
		raws = append(raws, rawSetup(b, api))
		joins = append(joins, parleyJoin(b, srv))
	}
	join, raw := median(joins), median(raws)
	b.ReportMetric(float64(join.Microseconds())/1000, "join-ms")
	b.ReportMetric(float64(raw.Microseconds())/1000, "pion-ms")
	b.ReportMetric(float64(join)/float64(raw), "join/pion")
}

func parleyJoin(b *testing.B, srv *parleytest.Server) time.Duration {
	start := time.Now()
	e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, parley.WithLoopbackOnly())
	if err != nil {
		b.Fatal(err)
	}
	joined := make(chan int, 1)
	room, err := e.CreateRoom("bench", stateHandler(joined))
	if err != nil {
		b.Fatal(err)
	}
	if err := room.JoinRoom(srv.Token("bench", "u"), parley.UserInfo{UserID: "u"}, parley.RoomConfig{}); err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	select {
	case state := <-joined:
		elapsed = time.Since(start)
		if state != 0 {
			b.Fatalf("join state %d", state)
		}
	case <-time.After(20 * time.Second):
		b.Fatal("join timed out")
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	return elapsed
}

type stateHandler chan int

func (h stateHandler) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) { h <- state }
func (stateHandler) OnLeaveRoom(parley.RoomStats)                                        {}
func (stateHandler) OnTokenWillExpire()                                                  {}
func (stateHandler) OnUserJoined(parley.UserInfo)                                        {}
func (stateHandler) OnUserLeave(string, parley.UserOfflineReason)                        {}
func (stateHandler) OnUserMessageReceived(string, string)                                {}
func (stateHandler) OnUserBinaryMessageReceived(string, []byte)                          {}
func (stateHandler) OnUserMessageSendResult(int64, parley.UserMessageSendResult)         {}
func (stateHandler) OnRoomMessageReceived(string, string)                                {}
func (stateHandler) OnRoomBinaryMessageReceived(string, []byte)                          {}
func (stateHandler) OnRoomMessageSendResult(int64, parley.RoomMessageSendResult)         {}

// rawSetup connects two pion PeerConnections with Parley's three negotiated
// channels and returns the time until all six ends are open.
func rawSetup(b *testing.B, api *webrtc.API) time.Duration {
	start := time.Now()
	pcs, _, _ := connectRaw(b, api)
	elapsed := time.Since(start)
	for _, pc := range pcs {
		_ = pc.Close()
	}
	return elapsed
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
