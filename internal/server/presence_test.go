package server

import (
	"testing"
	"time"
)

// addActive puts m in r as an active member, as activate does, but
// telling nobody.
func addActive(r *room, m *member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.state = stateActive
	r.seq++
	m.seq = r.seq
	r.members[m.userID] = m
	r.pres.ver++
	m.joinVer = r.pres.ver
	m.pcursor = r.pres.ver
	r.roster.list = append(r.roster.list, m)
}

// waitIdle waits until r's presence and fan-out workers have nothing left
// to do; with tb nil, it panics if they do not stop in time.
func waitIdle(tb testing.TB, r *room) {
	deadline := time.Now().Add(waitTimeout)
	for {
		r.mu.Lock()
		busy := r.pres.running
		r.mu.Unlock()
		r.fan.mu.Lock()
		busy = busy || r.fan.running
		r.fan.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			if tb == nil {
				panic("room still busy")
			}
			tb.Fatalf("room %s still busy after %v", r.id, waitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}
