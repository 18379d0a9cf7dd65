package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are one server's Prometheus metrics, in a registry of its own so
// that several servers can live in one process (tests).
type metrics struct {
	reg      *prometheus.Registry
	sessions prometheus.Gauge
	rooms    prometheus.Gauge
	members  prometheus.Gauge
	joins    *prometheus.CounterVec // by result
	closes   *prometheus.CounterVec // connections closed by the server, by reason
	resumes  *prometheus.CounterVec // resume requests by result

	relayed       *prometheus.CounterVec // messages by kind and outcome
	badPackets    prometheus.Counter
	dropped       prometheus.Counter
	slowConsumers prometheus.Counter
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
			Name: "parley_members", Help: "Active room members (data channels open).",
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
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_unreliable_dropped_total", Help: "Unreliable messages dropped because the receiver's queue was full.",
	})
	m.slowConsumers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_slow_consumers_total", Help: "Members disconnected because their reliable backlog overflowed.",
	})
	for _, r := range []string{joinOK, joinInvalidToken, joinInvalidID, joinUserIDDiffers, joinFailed} {
		m.joins.WithLabelValues(r)
	}
	m.reg.MustRegister(m.sessions, m.rooms, m.members, m.joins, m.closes,
		m.relayed, m.badPackets, m.dropped, m.slowConsumers, m.resumes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
