package server

import (
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parleyhq/parley/internal/transport"
)

// metrics are one server's Prometheus metrics, in a registry of its own so
// that several servers can live in one process (tests).
type metrics struct {
	reg      *prometheus.Registry
	sessions prometheus.Gauge
	rooms    prometheus.Gauge
	members  prometheus.Gauge
	// transports counts the sessions' PeerConnections: one per client
	// with a room, whatever its number of rooms.
	transports prometheus.Gauge
	joins      *prometheus.CounterVec // by result
	closes     *prometheus.CounterVec // connections closed by the server, by reason
	resumes    *prometheus.CounterVec // resume requests by result

	relayed       *prometheus.CounterVec // messages by kind and outcome
	messagesIn    *prometheus.CounterVec // messages that arrived, by kind
	bytesIn       *prometheus.CounterVec // their payload bytes, by kind
	results       *prometheus.CounterVec // results sent to senders, by code
	latency       *prometheus.HistogramVec
	badPackets    prometheus.Counter
	clusterBad    prometheus.Counter
	strayPackets  prometheus.Counter // well-formed, for a room the session is not in
	dropped       prometheus.Counter
	slowConsumers prometheus.Counter
	fanoutWaits   prometheus.Counter // readers that waited for room in a fan-out queue

	// The children of the vectors above that every message touches, found
	// once: WithLabelValues hashes its labels on each call, which a
	// broadcast to 2,000 would do 2,000 times.
	byKind   map[string]kindMetrics // fixed after newMetrics
	byResult sync.Map               // code (int32) → prometheus.Counter, as codes first occur
}

// kindMetrics are the message metrics of one kind.
type kindMetrics struct {
	messagesIn, bytesIn prometheus.Counter
	latency             prometheus.Observer // nil for kindServer, which is not relayed
}

// Join results, the "result" label of parley_joins_total.
const (
	joinOK            = "ok"
	joinInvalidToken  = "invalid_token"
	joinInvalidID     = "invalid_id"
	joinUserIDDiffers = "user_id_different"
	joinFailed        = "failed"
)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_sessions", Help: "Signaling sessions connected now.",
		}),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_rooms", Help: "Rooms with at least one member or pending join.",
		}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_members", Help: "Active room members (on an open transport).",
		}),
		transports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_transports", Help: "Sessions' PeerConnections set up now: one per client that set one up (for its first room), shared by all its rooms, kept until its session ends or the client closes it (the Go SDK does once no room has used it for a while).",
		}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_joins_total", Help: "Join requests by result.",
		}, []string{"result"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_connections_closed_total", Help: "Signaling connections the server closed, by reason.",
		}, []string{"reason"}),
	}
	m.relayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_messages_total", Help: "Messages the relay handled, by kind (user, broadcast) and outcome.",
	}, []string{"kind", "outcome"})
	m.resumes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_resumes_total", Help: "Session resume requests by result (ok, refused).",
	}, []string{"result"})
	m.badPackets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_bad_packets_total", Help: "Data-channel packets dropped because they did not decode.",
	})
	m.clusterBad = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_cluster_bad_messages_total", Help: "Messages from other nodes (NATS) dropped because they did not decode or were out of bounds.",
	})
	m.strayPackets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_stray_packets_total", Help: "Data-channel packets dropped because their session is not in the room they name (one just left, or never joined).",
	})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_unreliable_dropped_total", Help: "Unreliable messages dropped because the receiver's queue was full.",
	})
	m.fanoutWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_fanout_waits_total", Help: "Times a session's reader waited for its room's fan-out worker: the member's broadcasts not yet relayed passed 1 MiB, or the room's 16 MiB. The session's other rooms on that data channel waited too.",
	})
	m.slowConsumers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_slow_consumers_total", Help: "Members disconnected because their reliable backlog overflowed.",
	})
	m.messagesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_messages_received_total",
		Help: "Messages that arrived at the server, by kind (user, broadcast, outside, server), before any check.",
	}, []string{"kind"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_message_bytes_received_total",
		Help: "Payload bytes of the messages that arrived at the server, by kind.",
	}, []string{"kind"})
	m.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_results_total",
		Help: "Send results the server sent to senders, by result code (ByteRTC's values).",
	}, []string{"code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parley_relay_latency_seconds",
		Help:    "Time from a message's arrival at the server to its hand-off to the receiver's channel or signaling queue, by kind (user, broadcast, outside).",
		Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16), // 25 µs to 0.8 s
	}, []string{"kind"})
	for _, r := range []string{joinOK, joinInvalidToken, joinInvalidID, joinUserIDDiffers, joinFailed} {
		m.joins.WithLabelValues(r)
	}
	m.byKind = make(map[string]kindMetrics)
	for _, k := range []string{kindUser, kindBroadcast, kindOutside, kindServer} {
		km := kindMetrics{messagesIn: m.messagesIn.WithLabelValues(k), bytesIn: m.bytesIn.WithLabelValues(k)}
		if k != kindServer {
			km.latency = m.latency.WithLabelValues(k)
		}
		m.byKind[k] = km
	}
	m.reg.MustRegister(m.sessions, m.rooms, m.members, m.transports, m.joins, m.closes,
		m.relayed, m.badPackets, m.clusterBad, m.strayPackets, m.dropped, m.slowConsumers, m.fanoutWaits, m.resumes,
		m.messagesIn, m.bytesIn, m.results, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Message kinds, the "kind" label of the message metrics: user and
// broadcast messages in rooms, user messages outside rooms, and messages
// to the application server.
const (
	kindUser      = "user"
	kindBroadcast = "broadcast"
	kindOutside   = "outside"
	kindServer    = "server"
)

// arrived counts a message of kind with a payload of n bytes, as it
// arrives, and returns the time for handedOff.
func (m *metrics) arrived(kind string, n int) time.Time {
	km := m.byKind[kind]
	km.messagesIn.Inc()
	km.bytesIn.Add(float64(n))
	return time.Now()
}

// handedOff observes the relay latency of a message of kind that arrived
// at since and has just been handed to a receiver.
func (m *metrics) handedOff(kind string, since time.Time) {
	m.byKind[kind].latency.Observe(time.Since(since).Seconds())
}

// result counts a result sent to a sender.
func (m *metrics) result(code int32) {
	c, ok := m.byResult.Load(code)
	if !ok {
		c, _ = m.byResult.LoadOrStore(code, m.results.WithLabelValues(strconv.Itoa(int(code))))
	}
	c.(prometheus.Counter).Inc()
}

// kindOf is the kind of a message in a room.
func kindOf(msg wireMessage) string {
	if msg.broadcast {
		return kindBroadcast
	}
	return kindUser
}

// watchUDP adds the counts of the server's batched UDP socket, read from
// it at each scrape: where sockets are not batched (not Linux) there are
// none.
func (m *metrics) watchUDP(conn net.PacketConn) {
	if _, ok := transport.BatchStats(conn); !ok {
		return
	}
	count := func(name, help string, get func(transport.UDPBatchStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
			s, _ := transport.BatchStats(conn)
			return float64(get(s))
		})
	}
	m.reg.MustRegister(
		count("parley_udp_packets_sent_total", "UDP datagrams the server's ICE socket sent.", func(s transport.UDPBatchStats) uint64 { return s.PacketsSent }),
		count("parley_udp_send_calls_total", "sendmmsg calls that sent them: packets sent over calls is the batch the writer averages.", func(s transport.UDPBatchStats) uint64 { return s.SendCalls }),
		count("parley_udp_packets_received_total", "UDP datagrams the server's ICE socket received.", func(s transport.UDPBatchStats) uint64 { return s.PacketsReceived }),
		count("parley_udp_receive_calls_total", "recvmmsg calls that returned datagrams.", func(s transport.UDPBatchStats) uint64 { return s.ReceiveCalls }),
	)
}

// watchNATS adds parley_nats_connected, read from c at each scrape: only
// a node of a cluster has it.
func (m *metrics) watchNATS(c *cluster) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_nats_connected", Help: "1 while the node is connected to NATS, and so to the other nodes of its cluster; 0 while it is not (it serves only its local members then).",
	}, func() float64 {
		if c.connected() {
			return 1
		}
		return 0
	}))
}
