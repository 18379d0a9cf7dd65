// Package transport builds the pion side of Parley's one PeerConnection
// per client and server session, which carries all the client's rooms: the
// WebRTC API with Parley's settings, the three pre-negotiated data
// channels, the loopback-only ICE policy, and the Writer that keeps a
// queue per room on each channel. The client and the server share it, so
// both ends agree on channel IDs, modes and message sizes by construction.
package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The data channels, by SCTP stream ID. The index is also the
// MessageConfig value that selects the channel.
const (
	ChannelReliable            = 0 // ordered, retransmitted: reliable messages, broadcasts
	ChannelUnreliableOrdered   = 1 // ordered, maxRetransmits 0
	ChannelUnreliableUnordered = 2 // unordered, maxRetransmits 0
	NumChannels                = 3
)

// MaxSCTPMessage is the largest SCTP message either end accepts: a 64 KiB
// payload plus its packet header fits with room to spare.
const MaxSCTPMessage = 256 << 10

// SocketBuffer is the UDP socket buffer size asked for on sockets Parley
// opens: with the kernel's default ~208 KiB, bursts overflow the receive
// buffer and SCTP stalls on its 1 s minimum retransmission timer. A kernel
// that grants less is reported at Warn (ListenUDP, and NewAPI's sockets
// on Options.Logger).
const SocketBuffer = 4 << 20

// pion's ICE timers (github.com/pion/ice/v4): a pair that received nothing
// for ICEDisconnected is disconnected, and failed ICEFailed later; each
// end sends a keepalive (a binding request, which is also RFC 7675's
// consent check) every ICEKeepalive once connected.
const (
	ICEDisconnected = 5 * time.Second
	ICEFailed       = 25 * time.Second
	ICEKeepalive    = 2 * time.Second
)

// Options configures NewAPI.
type Options struct {
	// Logger receives pion's logs; nil discards them.
	Logger *zap.Logger
	// LoopbackOnly restricts ICE to IPv4 loopback host candidates: interface
	// "lo", loopback candidates on, mDNS off.
	LoopbackOnly bool
	// UDPMux, when set, carries all ICE traffic on one socket (the server).
	UDPMux ice.UDPMux
	// ICEDisconnectedTimeout, ICEFailedTimeout and ICEKeepalive override
	// pion's ICE timers when non-zero; zero keeps pion's default
	// (ICEDisconnected, ICEFailed, ICEKeepalive).
	ICEDisconnectedTimeout, ICEFailedTimeout, ICEKeepalive time.Duration
	// NoICEKeepalive: once connected, this end sends no keepalives of its
	// own and only answers the other end's, which keep the pair alive both
	// ways (the server: each client sends its own). pion's agent checks
	// its pair at least every 2 s and sends a keepalive at each check, so a
	// longer ICEKeepalive would not make them rarer; only none does.
	NoICEKeepalive bool
	// DataOnly leaves out pion's media machinery (codecs, and the NACK,
	// RTCP report, TWCC and stats interceptors), which a PeerConnection
	// that carries only data channels never uses but pays for in goroutines
	// and timers.
	DataOnly bool
	// Net, when set, is the network ICE runs on instead of the host's:
	// tests pass a pion vnet to put loss or delay between the ends. Its
	// addresses are not the host's loopback, so LoopbackOnly's interface
	// and IP filters do not apply; loopback candidates stay off, and the
	// traffic never leaves the process anyway. Nil: the host's network.
	Net Net
	// UnbatchedUDP leaves the sockets pion opens as the kernel gives them:
	// a system call a packet, as in pion itself. Benchmarks' raw pion
	// baselines set it. Without it, on Linux, each socket's reads and
	// writes are batched (udpbatch.go).
	UnbatchedUDP bool
}

// Net is pion's network interface (github.com/pion/transport/v5), which
// pion's vnet implements.
type Net = transport.Net

// NewAPI returns a pion API with Parley's settings: detached data channels
// (the reader goroutine paces SCTP, which is how back-pressure reaches the
// sender), a raised SCTP message size, SocketBuffer-sized UDP buffers, no
// pion logging unless asked for, and the ICE policy of o.
func NewAPI(o Options) *webrtc.API {
	var se webrtc.SettingEngine
	se.LoggerFactory = newLoggerFactory(o.Logger)
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(MaxSCTPMessage)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if o.LoopbackOnly && o.Net == nil {
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetIncludeLoopbackCandidate(true)
	}
	if o.UDPMux != nil {
		se.SetICEUDPMux(o.UDPMux)
	}
	if o.Net != nil {
		se.SetNet(o.Net)
	} else if n, err := newBufferedNet(o.Logger, !o.UnbatchedUDP); err == nil {
		// One network for every PeerConnection of the API. Without it pion
		// makes one per ICE agent, which lists the host's interfaces over
		// netlink as the PeerConnection is set up and keeps the answer for
		// its life (the addresses it parsed point into netlink's buffers):
		// on the server, on its UDP mux, a few KiB and a netlink dump per
		// member.
		se.SetNet(n)
	} // else pion's default network, with the kernel's default buffers
	if o.ICEDisconnectedTimeout != 0 || o.ICEFailedTimeout != 0 || o.ICEKeepalive != 0 || o.NoICEKeepalive {
		// pion takes the three at once, and a zero as "never".
		keepalive := cmp.Or(o.ICEKeepalive, ICEKeepalive)
		if o.NoICEKeepalive {
			keepalive = 0
		}
		se.SetICETimeouts(cmp.Or(o.ICEDisconnectedTimeout, ICEDisconnected), cmp.Or(o.ICEFailedTimeout, ICEFailed), keepalive)
	}
	if o.DataOnly {
		return webrtc.NewAPI(webrtc.WithSettingEngine(se),
			webrtc.WithMediaEngine(&webrtc.MediaEngine{}),
			webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// Configuration returns the PeerConnection configuration for the given STUN
// or TURN URLs (none: host candidates only).
func Configuration(iceServers []string) webrtc.Configuration {
	var cfg webrtc.Configuration
	if len(iceServers) > 0 {
		cfg.ICEServers = []webrtc.ICEServer{{URLs: iceServers}}
	}
	return cfg
}

// CreateChannels creates the three pre-negotiated data channels on
// pc. Both ends call it before the offer/answer exchange, so no DCEP round
// trip is needed and no data can arrive on a stream nobody listens to.
func CreateChannels(pc *webrtc.PeerConnection) ([NumChannels]*webrtc.DataChannel, error) {
	var dcs [NumChannels]*webrtc.DataChannel
	zero := uint16(0)
	inits := [NumChannels]struct {
		label   string
		ordered bool
		maxRtx  *uint16
	}{
		ChannelReliable:            {"parley-reliable", true, nil},
		ChannelUnreliableOrdered:   {"parley-unreliable-ordered", true, &zero},
		ChannelUnreliableUnordered: {"parley-unreliable-unordered", false, &zero},
	}
	for i, in := range inits {
		id := uint16(i)
		negotiated := true
		ordered := in.ordered
		dc, err := pc.CreateDataChannel(in.label, &webrtc.DataChannelInit{
			ID:             &id,
			Negotiated:     &negotiated,
			Ordered:        &ordered,
			MaxRetransmits: in.maxRtx,
		})
		if err != nil {
			return dcs, fmt.Errorf("create data channel %s: %w", in.label, err)
		}
		dcs[i] = dc
	}
	return dcs, nil
}

// WaitGathered waits until pc has gathered all its ICE candidates, so that
// its local description is complete.
func WaitGathered(ctx context.Context, pc *webrtc.PeerConnection) error {
	gathered := webrtc.GatheringCompletePromise(pc)
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ICE gathering: %w", ctx.Err())
	}
}

// ListenNetUDP opens a UDP socket at port on n's first IPv4 address that
// is not a loopback one: the server's ICE socket on a test network.
func ListenNetUDP(n Net, port int) (net.PacketConn, error) {
	ifaces, err := n.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			var ip net.IP
			switch a := a.(type) {
			case *net.IPNet:
				ip = a.IP
			case *net.IPAddr:
				ip = a.IP
			}
			if ip4 := ip.To4(); ip4 != nil && !ip4.IsLoopback() && !ip4.IsUnspecified() {
				return n.ListenUDP("udp4", &net.UDPAddr{IP: ip4, Port: port})
			}
		}
	}
	return nil, errors.New("no IPv4 address that is not loopback on the network")
}

// ListenUDP opens a UDP socket on addr with SocketBuffer-sized buffers (as
// far as the kernel allows), and logs a Warn on log when the kernel grants
// less; a nil log discards it.
func ListenUDP(addr *net.UDPAddr, log *zap.Logger) (*net.UDPConn, error) {
	conn, err := net.ListenUDP("udp4", addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	setBuffers(conn, SocketBuffer, log, zapcore.WarnLevel)
	return conn, nil
}
