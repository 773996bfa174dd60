// Which controller acts: one at a time, even when two controllers cannot
// hear each other.
//
// Each controller backs one: the first manager, in inventory order, that it
// hears, while it hears a majority (a cut-off minority backs nobody). It
// acts only while a majority of controllers back it, as their views, sent
// four times a heartbeat, say. Choosing by itself was not enough: with
// controllers a, b and c and a partition between a and b only (c hears
// both), a saw itself first and b, suspecting a, saw itself first too, and
// both acted.
//
// Why two never act at once: each controller backs at most one at a time,
// and a majority of backers for each of two would need one controller in
// both. A view counts as a backer's only while it is fresh (received within
// voteFresh), and a controller that changes its choice backs nobody for
// voteHold first (> voteFresh), so by the time it backs the new one, no
// controller still counts it for the old. The cost: when the acting
// controller itself dies, the next one acts voteHold later (one heartbeat,
// 200 ms with the defaults). The assumption: no view spends more than
// voteHold - voteFresh (half a heartbeat) in the network.

package main

import "time"

func (a *Agent) voteFresh() time.Duration { return a.heartbeat / 2 }
func (a *Agent) voteHold() time.Duration  { return a.heartbeat }

// choice: the controller this one would back now, or "" when it hears no majority.
func (a *Agent) choice(now time.Time) string {
	heard := []string{}
	for _, m := range a.managers {
		if !a.suspect(m.Name, now) {
			heard = append(heard, m.Name)
		}
	}
	if len(heard) < majority(len(a.managers)) {
		return ""
	}
	return heard[0]
}

// castVote moves this controller's backing towards `want`: a withdrawal at
// once, a new backing only after want has been wanted for voteHold (from
// the start, too: a restarted controller may have backed another a moment ago).
func (a *Agent) castVote(want string, now time.Time) {
	if want != a.wanted {
		a.wanted, a.wantedAt = want, now
	}
	if a.vote != want {
		a.vote = ""
	}
	if a.vote == "" && want != "" && now.Sub(a.wantedAt) >= a.voteHold() {
		a.vote = want
	}
}

// backers: how many controllers, this one included, back `name` now.
func (a *Agent) backers(name string, now time.Time) int {
	n := 0
	if a.vote == name {
		n++
	}
	for _, m := range a.managers {
		if m.Name == a.cfg.Self {
			continue
		}
		if v, ok := a.views[m.Name]; ok && v.vote == name && now.Sub(v.received) < a.voteFresh() {
			n++
		}
	}
	return n
}

// acting: whether a majority of controllers back this one.
func (a *Agent) acting(now time.Time) bool {
	return a.backers(a.cfg.Self, now) >= majority(len(a.managers))
}
