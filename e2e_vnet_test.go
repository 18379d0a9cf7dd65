package parley_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	iserver "github.com/parleyhq/parley/internal/server"
	"github.com/parleyhq/parley/parleytest"
)

// Faults on loopback: there is no netem here, so the room's WebRTC traffic
// runs over a pion vnet instead, a network simulated inside the process,
// whose router drops a share of the UDP packets it routes. Signaling stays
// on the real loopback WebSocket. The server (internal/server with
// Config.ICENet) and every Engine (NewEngineOnNetForTest) each have a Net
// of their own on the vnet, so every data-channel packet crosses the
// router twice, sender to server and server to receiver, and risks the
// loss each time.

// The vnet's faults: the share of packets its router drops, and the time
// each packet spends in it, each way (sender to server, server to
// receiver).
const (
	vnetLossPercent = 5
	vnetDelay       = time.Millisecond
)

// lossyNet is a pion vnet router on 10.0.0.0/24 that drops a percentage
// of the packets it routes (none until setLoss), and counts them.
type lossyNet struct {
	router *vnet.Router

	mu      sync.Mutex
	rng     *mrand.Rand
	percent int
	routed  int
	dropped int
}

// setLoss makes the network drop percent of the packets from now on.
func (l *lossyNet) setLoss(percent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.percent = percent
}

// newLossyNet starts a lossy router with a Net for each of hosts, and
// stops it in t.Cleanup: call it before starting the server and the
// Engines, so that their cleanups, which run first, close them while the
// network still carries their goodbyes.
func newLossyNet(t *testing.T, hosts int) (*lossyNet, []*vnet.Net) {
	t.Helper()
	r, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR:          "10.0.0.0/24",
		MinDelay:      vnetDelay,
		LoggerFactory: logging.NewDefaultLoggerFactory(),
	})
	require.NoError(t, err)
	seed := mrand.Uint64()
	t.Logf("vnet: %d%% loss and %v delay each way, loss seed %d", vnetLossPercent, vnetDelay, seed)
	l := &lossyNet{router: r, rng: mrand.New(mrand.NewPCG(seed, 0))}
	r.AddChunkFilter(l.filter)
	nets := make([]*vnet.Net, hosts)
	for i := range nets {
		n, err := vnet.NewNet(&vnet.NetConfig{})
		require.NoError(t, err)
		require.NoError(t, r.AddNet(n))
		nets[i] = n
	}
	require.NoError(t, r.Start())
	t.Cleanup(func() { require.NoError(t, r.Stop()) })
	return l, nets
}

// filter is the router's chunk filter: false drops the packet. The router
// calls it from its one goroutine; the lock is for the test's reads.
func (l *lossyNet) filter(vnet.Chunk) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.routed++
	if l.rng.IntN(100) < l.percent {
		l.dropped++
		return false
	}
	return true
}

// counts returns the packets routed and dropped so far.
func (l *lossyNet) counts() (routed, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.routed, l.dropped
}

// vnetServer is a relay server whose signaling listens on 127.0.0.1 and
// whose WebRTC traffic runs on a vnet Net. The public server.Config has no
// way to say that, so the test builds the internal server, as parleytest
// builds the public one.
type vnetServer struct {
	url, appID, appKey string
	ice                net.Addr // the server's ICE (UDP mux) address on the vnet
}

func newVNetServer(t *testing.T, n *vnet.Net) *vnetServer {
	t.Helper()
	appID, appKey := randHex(12), randHex(16)
	srv, err := iserver.New(iserver.Config{
		Listen:       "127.0.0.1:0",
		Apps:         map[string]string{appID: appKey},
		LoopbackOnly: true,
		ICENet:       n,
	})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
	})
	t.Logf("vnet: server's ICE port %v", srv.UDPAddr())
	return &vnetServer{url: srv.URL(), appID: appID, appKey: appKey, ice: srv.UDPAddr()}
}

// token returns a room token for userID in roomID, as parleytest's Token.
func (s *vnetServer) token(t *testing.T, roomID, userID string) string {
	t.Helper()
	return mintToken(t, s.appID, s.appKey, roomID, userID, time.Now().Add(time.Hour))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newVNetPeer is newPeer for an Engine whose WebRTC traffic runs on n,
// with a room recorder that holds capacity messages and as many results,
// and waits for a result as long as a message may take.
func newVNetPeer(t *testing.T, srv *vnetServer, n *vnet.Net, roomID, user string, capacity int) *peer {
	t.Helper()
	p := &peer{
		eng:  parleytest.NewRecorder(),
		rec:  parleytest.NewRecorderSize(2*capacity + 1024),
		user: user,
		info: parley.UserInfo{UserID: user},
	}
	p.rec.Timeout = vnetMessageTimeout + waitTimeout
	e, err := parley.NewEngineOnNetForTest(parley.EngineConfig{AppID: srv.appID, ServerURL: srv.url}, p.eng, n,
		parley.WithLoopbackOnly(), parley.WithMessageTimeout(vnetMessageTimeout))
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		waitDone(t, e)
	})
	p.e = e
	room, err := e.CreateRoom(roomID, p.rec)
	require.NoError(t, err)
	p.room = room
	return p
}

// vnetMessageTimeout is the vnet Engines' message timeout. 10,000 reliable
// messages of up to 32 KiB, all sent at once over a lossy network, take
// 4–9 s here and 15 s on a loaded machine, and every one must get Success:
// the default 10 s would turn the last ones into Timeouts. It is also how
// long the unreliable messages lost before the server take to get theirs.
const vnetMessageTimeout = 30 * time.Second

// vnetCount is the number of reliable messages TestVNetLoss sends:
// 10,000, or PARLEY_VNET_MESSAGES.
func vnetCount(t *testing.T) int {
	n := 10000
	if s := os.Getenv("PARLEY_VNET_MESSAGES"); s != "" {
		v, err := strconv.Atoi(s)
		require.NoError(t, err, "PARLEY_VNET_MESSAGES")
		n = v
	}
	return n
}

// vnetUnreliable is the number of messages sent in each unreliable mode.
const vnetUnreliable = 2000

// vnetMessage returns message i of the phase tagged tag: a text or a
// binary message (every other one) that starts with the tag and i, of 8
// to 200 bytes, and of 32 KiB now and then, which spans some 28 packets.
func vnetMessage(tag string, i int) (binary bool, payload []byte) {
	size := 8 + i%193
	if i%500 == 499 {
		size = 32 << 10
	}
	head := fmt.Sprintf("%s:%06d:", tag, i)
	if i%2 == 1 {
		return true, append([]byte(head), payloadOf(size, byte(i))...)
	}
	return false, []byte(head + textOf(size, byte(i)))
}

// sendVNetMessage sends message i of phase tag from p to "bob" in mode.
func sendVNetMessage(p *peer, tag string, i int, mode parley.MessageConfig) int64 {
	binary, payload := vnetMessage(tag, i)
	if binary {
		return p.room.SendUserBinaryMessage("bob", payload, mode)
	}
	return p.room.SendUserMessage("bob", string(payload), mode)
}

// delivery is what a receiver got of the n messages of one phase.
type delivery struct {
	sent, delivered, duplicated, outOfOrder int
}

func (d delivery) lost() int { return d.sent - d.delivered }

func (d delivery) String() string {
	return fmt.Sprintf("sent %d, delivered %d, lost %d (%.2f%%), duplicated %d, out of order %d",
		d.sent, d.delivered, d.lost(), 100*float64(d.lost())/float64(d.sent), d.duplicated, d.outOfOrder)
}

// checkDelivery checks every message of got against the message of its
// sequence number in phase tag, byte for byte, and counts what was
// delivered, duplicated and out of order (a number below one already
// delivered) of the n sent.
func checkDelivery(t *testing.T, tag string, n int, got []parleytest.Message) delivery {
	t.Helper()
	d := delivery{sent: n}
	seen := make([]bool, n)
	last := -1
	for _, m := range got {
		rest, ok := strings.CutPrefix(string(m.Payload), tag+":")
		require.Truef(t, ok, "%s: a message of another phase: %q", tag, clip(m.Payload))
		i, err := strconv.Atoi(rest[:min(6, len(rest))])
		require.NoError(t, err, "%s: sequence number of %q", tag, clip(m.Payload))
		require.True(t, i >= 0 && i < n, "%s: sequence number %d", tag, i)
		binary, want := vnetMessage(tag, i)
		require.Equal(t, "alice", m.From, "%s message %d: sender", tag, i)
		require.False(t, m.Broadcast, "%s message %d: broadcast", tag, i)
		require.Equal(t, binary, m.Binary, "%s message %d: binary", tag, i)
		requireBytes(t, want, m.Payload, fmt.Sprintf("%s message %d", tag, i))
		if seen[i] {
			d.duplicated++
		} else {
			seen[i] = true
			d.delivered++
		}
		if i < last {
			d.outOfOrder++
		}
		last = max(last, i)
	}
	return d
}

// drainMode waits until everything alice sent bob in mode that is going
// to arrive has arrived, and returns what arrived. A message in an
// unreliable mode may be lost, so no single end marker can be waited for:
// alice sends one, and another if it has not come after a while, until one
// does. vnet keeps packets in order and a lost packet of an unreliable
// mode is never sent again (maxRetransmits 0), so once a marker is in,
// nothing sent before it is still on the way. It returns the markers'
// message IDs too.
func drainMode(t *testing.T, alice, bob *peer, tag string, mode parley.MessageConfig) ([]parleytest.Message, []int64) {
	t.Helper()
	const (
		attempts = 20
		patience = 2 * time.Second // a marker not in by then is lost
	)
	var got []parleytest.Message
	var markers []int64
	for k := range attempts {
		mark := fmt.Sprintf("end of %s, try %d", tag, k)
		markers = append(markers, alice.room.SendUserMessage("bob", mark, mode))
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		for {
			ev, err := bob.rec.NextWhereContext(ctx, isA[parleytest.Message])
			if ctx.Err() != nil {
				break
			}
			require.NoError(t, err)
			m := ev.(parleytest.Message)
			if strings.HasPrefix(string(m.Payload), "end of ") {
				if strings.HasPrefix(string(m.Payload), "end of "+tag+",") {
					cancel()
					return got, markers
				}
				continue // an earlier phase's late marker: not data
			}
			got = append(got, m)
		}
		cancel()
	}
	t.Fatalf("%s: none of %d end markers arrived", tag, attempts)
	return nil, nil
}

// TestVNetLoss: alice and bob join on a clean vnet; then the network drops
// 5% of the packets each way (and holds each for 1 ms) while alice sends
// bob 10,000 reliable user messages (text and binary, 8 bytes to 32 KiB):
// they arrive exactly once, in order, byte for byte, and each gets
// Success. Then 2,000 messages in each unreliable mode: nothing is
// duplicated, UnreliableOrdered never delivers out of order, and some are
// lost, as maxRetransmits 0 means (a channel that retransmitted would lose
// nothing: the regression test of transport's applyReliability, which
// pion does not apply to pre-negotiated channels by itself). The loss is
// logged. Every send gets exactly one result, Success or, for unreliable
// messages lost before the server, Timeout; nobody's PeerConnection is
// lost on the way (no room state after the join, nobody leaves).
//
// PARLEY_VNET_MESSAGES sets the number of reliable messages.
func TestVNetLoss(t *testing.T) {
	n := vnetCount(t)
	lossy, nets := newLossyNet(t, 3)
	srv := newVNetServer(t, nets[0])
	capacity := max(n, vnetUnreliable) + 64
	alice := newVNetPeer(t, srv, nets[1], "lossy", "alice", capacity)
	bob := newVNetPeer(t, srv, nets[2], "lossy", "bob", capacity)
	start := time.Now()
	for _, p := range []*peer{alice, bob} {
		require.NoError(t, p.room.JoinRoom(srv.token(t, "lossy", p.user), parley.UserInfo{UserID: p.user}, parley.RoomConfig{}))
		require.Equal(t, 0, p.rec.NextRoomState(t).State, "%s: room state after JoinRoom", p.user)
	}
	alice.rec.WaitUserJoined(t, "bob")
	bob.rec.WaitUserJoined(t, "alice")
	routed, dropped := lossy.counts()
	t.Logf("joined in %v; vnet so far: %d packets routed, %d dropped", time.Since(start).Round(time.Millisecond), routed, dropped)
	// The joins ran on a clean network: a handshake packet lost retries on
	// timers of seconds (DTLS, SCTP INIT), and a few in a row could outlast
	// the join's wait. The loss under test is the messages'.
	lossy.setLoss(vnetLossPercent)

	// Each phase needs the previous one over: a failed one's messages would
	// still be arriving.
	require.True(t, t.Run("reliable", func(t *testing.T) {
		start := time.Now()
		r0, d0 := lossy.counts()
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = sendVNetMessage(alice, "r", i, reliableOrdered)
			require.Positive(t, ids[i], "message %d", i)
		}
		got := bob.rec.NextMessages(t, n)
		d := checkDelivery(t, "r", n, got)
		results := alice.rec.WaitResults(t, ids...)
		elapsed := time.Since(start)
		r1, d1 := lossy.counts()
		t.Logf("reliable: %v in %v; vnet: %d packets routed, %d dropped (%.2f%%)",
			d, elapsed.Round(time.Millisecond), r1-r0, d1-d0, 100*float64(d1-d0)/float64(r1-r0))
		require.Equal(t, delivery{sent: n, delivered: n}, d)
		require.Positive(t, d1-d0, "the network dropped nothing: is the room's traffic on the vnet?")
		for _, id := range ids {
			require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), results[id])
		}
		require.Empty(t, barrier(t, alice, bob), "messages after the last one")
		requireNoResult(t, alice.rec)
	}))

	// Results of unreliable sends lost before the server are Timeouts, which
	// take the message timeout to come: they are collected at the end.
	var unreliableIDs []int64
	byMode := make(map[parley.MessageConfig][]int64)
	for _, mode := range []parley.MessageConfig{unreliableOrdered, unreliableUnordered} {
		require.True(t, t.Run(mode.String(), func(t *testing.T) {
			start := time.Now()
			r0, d0 := lossy.counts()
			tag := fmt.Sprintf("u%d", mode)
			ids := make([]int64, vnetUnreliable)
			for i := range ids {
				ids[i] = sendVNetMessage(alice, tag, i, mode)
				require.Positive(t, ids[i], "message %d", i)
			}
			got, markers := drainMode(t, alice, bob, tag, mode)
			byMode[mode] = ids
			unreliableIDs = append(append(unreliableIDs, ids...), markers...)
			d := checkDelivery(t, tag, vnetUnreliable, got)
			r1, d1 := lossy.counts()
			t.Logf("%v: %v in %v; vnet: %d packets routed, %d dropped (%.2f%%)",
				mode, d, time.Since(start).Round(time.Millisecond), r1-r0, d1-d0, 100*float64(d1-d0)/float64(r1-r0))
			require.Zero(t, d.duplicated, "duplicates")
			if mode == unreliableOrdered {
				require.Zero(t, d.outOfOrder, "out of order on an ordered channel")
			}
			require.Positive(t, d.delivered, "nothing delivered")
			require.Positive(t, d1-d0, "the network dropped nothing: is the room's traffic on the vnet?")
			// maxRetransmits 0: what the network drops stays lost. (pion's
			// negotiated channels stayed reliable until transport's
			// applyReliability; this is its regression test.)
			require.Positive(t, d.lost(), "%v lost nothing although the network dropped %d packets: the channel retransmits", mode, d1-d0)
		}))
	}

	t.Run("results", func(t *testing.T) {
		start := time.Now()
		results := alice.rec.WaitResults(t, unreliableIDs...)
		for _, mode := range []parley.MessageConfig{unreliableOrdered, unreliableUnordered} {
			ids := byMode[mode]
			counts := countCodes(results, ids)
			t.Logf("%v: results: %d Success (forwarded by the server), %d Timeout, %d other", mode,
				counts[int(parley.UserMessageSendResultSuccess)], counts[int(parley.UserMessageSendResultTimeout)],
				len(ids)-counts[int(parley.UserMessageSendResultSuccess)]-counts[int(parley.UserMessageSendResultTimeout)])
			require.Equal(t, len(ids), counts[int(parley.UserMessageSendResultSuccess)]+counts[int(parley.UserMessageSendResultTimeout)],
				"results other than Success and Timeout: %v", counts)
		}
		t.Logf("the last results (Timeouts) in %v", time.Since(start).Round(time.Millisecond))
		requireNoResult(t, alice.rec)
	})

	// The loss cost no PeerConnection: nobody rejoined or left.
	for _, p := range []*peer{alice, bob} {
		requireNone[parleytest.RoomStateChanged](t, p.rec, p.user+": room states after the join")
		requireNone[parleytest.UserLeave](t, p.rec, p.user+": members seen leaving")
	}
}
