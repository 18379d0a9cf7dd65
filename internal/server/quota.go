package server

import "golang.org/x/time/rate"

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
