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
	for _, r := range []string{joinOK, joinInvalidToken, joinInvalidID, joinUserIDDiffers, joinFailed} {
		m.joins.WithLabelValues(r)
	}
	m.reg.MustRegister(m.sessions, m.rooms, m.members, m.joins, m.closes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
