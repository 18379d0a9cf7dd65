package server

import (
	"time"

	"golang.org/x/time/rate"
)

// userQuota holds one session's rate limits. A zero rate is no limit.
type userQuota struct {
	userMessage *rate.Limiter // user messages, in rooms and outside, together
	broadcast   *rate.Limiter
	server      *rate.Limiter
}

func newUserQuota(q Quotas) userQuota {
	return userQuota{
		userMessage: perSecond(q.UserMessagesPerSecond),
		broadcast:   perSecond(q.BroadcastsPerSecond),
		server:      perSecond(q.ServerMessagesPerSecond),
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
// does not spend the others' allowance.
func allow(limiters ...*rate.Limiter) bool {
	now := time.Now()
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
