package server

import (
	"golang.org/x/time/rate"
)

// userQuota holds one user's rate limits: every session of the user (the
// same app and user ID, in rooms or logged in) takes from the same
// buckets, so a user cannot multiply its allowance by opening Engines. A
// zero rate is no limit.
type userQuota struct {
	userMessage *rate.Limiter // user messages, in rooms and outside, together
	broadcast   *rate.Limiter
	server      *rate.Limiter

	refs int // sessions holding it; guarded by Server.qmu
}

// quotaKey names a user: its app and user ID.
type quotaKey struct{ app, user string }

func newUserQuota(q Quotas) *userQuota {
	return &userQuota{
		userMessage: perSecond(q.UserMessagesPerSecond),
		broadcast:   perSecond(q.BroadcastsPerSecond),
		server:      perSecond(q.ServerMessagesPerSecond),
	}
}

// acquireQuota returns the quota of user k, the one its other sessions
// hold if any; releaseQuota gives it back.
func (s *Server) acquireQuota(k quotaKey) *userQuota {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	q := s.quotas[k]
	if q == nil {
		q = newUserQuota(s.cfg.Quotas)
		s.quotas[k] = q
	}
	q.refs++
	return q
}

// releaseQuota gives back a quota acquireQuota returned; the last session
// of the user to give it back forgets it.
func (s *Server) releaseQuota(k quotaKey, q *userQuota) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	q.refs--
	if q.refs == 0 && s.quotas[k] == q {
		delete(s.quotas, k)
	}
}

// perSecond is a limiter of n events per second with a burst of n; n <= 0
// is unlimited.
func perSecond(n int) *rate.Limiter {
	if n <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(n), n)
}

// allow takes one event from every limiter, or from none: a refusal by one
// does not spend the others' allowance. Time is the server's Clock.
func (s *Server) allow(limiters ...*rate.Limiter) bool {
	now := s.cfg.Clock.Now()
	var taken []*rate.Reservation
	for _, l := range limiters {
		r := l.ReserveN(now, 1)
		if !r.OK() || r.DelayFrom(now) > 0 {
			r.CancelAt(now)
			for _, t := range taken {
				t.CancelAt(now)
			}
			return false
		}
		taken = append(taken, r)
	}
	return true
}
