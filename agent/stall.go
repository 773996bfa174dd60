package main

import (
	"fmt"
	"time"
)

// A stall: the agent's process did not run for a while (stopped with
// SIGSTOP, an SD card that hangs every write, a host thrashing its swap).
// When it runs again, everything it knows is old, and the packets that
// queued in its socket meanwhile arrive now and look new. The nemesis caught
// a controller that, resumed after 6 s, still took itself for the acting one
// and fenced the copy the others had just restored. So after a stall the
// agent takes no decision and tells no view until downAfter has passed: by
// then what it hears is what is true now, and its own lease (which runs
// from the send times of acknowledged heartbeats, not from receipt) has
// lapsed and fenced its copies. It also forgets which node owns each
// service, and learns it again from the reports.

// noteTickLocked records that the agent ran at `now`; a gap of more than a
// lease since its last run starts a stall. Called by the frequent loops
// (lease check, control) with a.mu held.
func (a *Agent) noteTickLocked(now time.Time) {
	if !a.lastTick.IsZero() && now.Sub(a.lastTick) > a.lease {
		gap := now.Sub(a.lastTick)
		a.stalledUntil = now.Add(a.downAfter)
		// Who ran what is forgotten too: a controller that kept its old owners fenced the copy
		// the others had restored while it stood still (two copies run; the stale owner won).
		// Learned again from the reports: one copy running is its owner.
		a.owner = map[string]string{}
		a.eventLocked("stalled", "", fmt.Sprintf("this agent did not run for %v: no decision and no view until %v has passed, and who runs what is learned anew", gap.Round(time.Millisecond), a.downAfter))
	}
	if now.After(a.lastTick) {
		a.lastTick = now
	}
}

// stalled: whether the agent is still recovering from a stall at `now`.
func (a *Agent) stalled(now time.Time) bool {
	return now.Before(a.stalledUntil)
}
