// The controller, on every manager: who is down, who restores, who is the
// standby, which stale copies go.

package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

func (a *Agent) lastHeard(name string) time.Time {
	if name == a.cfg.Self {
		return time.Now()
	}
	if t, ok := a.heard[name]; ok {
		return t
	}
	return a.start // nobody is suspected before downAfter has passed since this controller started
}

func (a *Agent) suspect(name string, now time.Time) bool {
	return now.Sub(a.lastHeard(name)) >= a.downAfter
}

// downVotes: how many controllers, this one included, have not heard `name`
// for downAfter. A peer's view counts only while it is fresh.
func (a *Agent) downVotes(name string, now time.Time) int {
	votes := 0
	for _, m := range a.managers {
		if m.Name == a.cfg.Self {
			if a.suspect(name, now) {
				votes++
			}
			continue
		}
		v, ok := a.views[m.Name]
		if !ok || now.Sub(v.received) >= a.downAfter || m.Name == name {
			continue
		}
		if age, ok := v.ages[name]; ok && time.Duration(age)*time.Millisecond >= a.downAfter {
			votes++
		}
	}
	return votes
}

func (a *Agent) reportOf(node, service string) (Local, bool) {
	for _, l := range a.reports[node] {
		if l.Name == service {
			return l, true
		}
	}
	return Local{}, false
}

// copies: the nodes not down for a majority whose copy of `s` runs and serves
// as this controller last heard from them (reported), and those among them it
// heard within downAfter (running): only these say where the service runs now.
// A report stays as its node's last heartbeat left it, and a node this
// controller no longer hears is down only by a majority's votes, which a
// controller that restarted withholds for downAfter (it has not yet missed
// anyone): a CI run's re-imaged node's last report, "running" from before
// the re-image, counted again while pulumi up restarted an agent, made that
// node the owner for a tick, and the copy restored on the standby was
// fenced as a second one.
func (a *Agent) copies(s Service, down map[string]bool, now time.Time) (running, reported []string) {
	for _, n := range s.Nodes {
		// An unhealthy copy runs but does not serve: it is replaced, not counted.
		if l, ok := a.reportOf(n, s.Name); ok && l.State == "running" && l.Health != healthUnhealthy && !down[n] {
			reported = append(reported, n)
			if !a.suspect(n, now) {
				running = append(running, n)
			}
		}
	}
	return running, reported
}

// moving: whether any node reports a planned migration of `service` under way.
func (a *Agent) moving(service string) bool {
	for _, locals := range a.reports {
		for _, l := range locals {
			if l.Name == service && l.Moving {
				return true
			}
		}
	}
	return false
}

// known: whether `node` could read the state of its copy of `service` (its engine answered).
func (a *Agent) known(node, service string) bool {
	l, ok := a.reportOf(node, service)
	return ok && l.State != "unknown"
}

// allKnown: whether every node that is up and may run `s` has reported the
// state of its copy (its engine answered), and at least one has.
func (a *Agent) allKnown(s Service, alive func(string) bool) bool {
	reported := false
	for _, n := range s.Nodes {
		if !alive(n) {
			continue
		}
		if !a.known(n, s.Name) {
			return false
		}
		reported = true
	}
	return reported
}

// holds reports whether condition `key` has held for at least d (and starts its clock).
func (a *Agent) holds(key string, now time.Time, d time.Duration) bool {
	t, ok := a.firstSeen[key]
	if !ok {
		a.firstSeen[key] = now
		return false
	}
	return now.Sub(t) >= d
}

func (a *Agent) control() {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.noteTickLocked(now); a.stalled(now) {
		return
	}
	down := map[string]bool{}
	for _, n := range a.cfg.Nodes {
		down[n.Name] = a.downVotes(n.Name, now) >= majority(len(a.managers))
	}
	// Every controller keeps track of where each service runs, so that any of them can act.
	running, reported := map[string][]string{}, map[string][]string{}
	for _, s := range a.cfg.Services {
		running[s.Name], reported[s.Name] = a.copies(s, down, now)
		if r := running[s.Name]; len(r) == 1 && now.After(a.busyUntil[s.Name]) {
			a.owner[s.Name] = r[0]
			a.unserved[s.Name] = false
		}
	}
	// Only the acting controller goes on: the one a majority of controllers back (actor.go).
	a.castVote(a.choice(now), now)
	acting := a.acting(now)
	if acting != a.wasActing {
		a.wasActing = acting
		if acting {
			a.eventLocked("acting", "", "this controller acts: a majority of controllers back it")
		} else {
			a.eventLocked("acting", "", "this controller no longer acts: no majority backs it")
		}
	}
	if !acting {
		return
	}
	for _, n := range a.cfg.Nodes {
		if _, was := a.downSince[n.Name]; down[n.Name] && !was {
			a.downSince[n.Name] = now
			a.eventLocked("down", "", fmt.Sprintf("%s is down: no heartbeat for %v at a majority of controllers", n.Name, a.downAfter))
		} else if was && !down[n.Name] && !a.suspect(n.Name, now) {
			delete(a.downSince, n.Name)
			a.eventLocked("up", "", fmt.Sprintf("%s is back", n.Name))
		}
	}
	if warning := a.quorumWarning(down); warning != a.warned {
		a.warned = warning
		if warning != "" {
			a.eventLocked("warning", "", warning)
		}
	}
	alive := func(n string) bool { return !down[n] && !a.suspect(n, now) }
	seen := map[string]bool{}
	for _, s := range a.cfg.Services {
		if a.waiting(s.Name, now, down) {
			continue
		}
		owner := a.owner[s.Name]
		r := running[s.Name]
		if owner == "" {
			// Nobody here knows where it ran (this controller started, or forgot after a stall).
			// Running nowhere while every node up can tell, for longer than a boot's slow engine
			// takes: restored from the newest checkpoint, or it would stay down for good.
			// (Not while a node not down for a majority last said it runs it, however long ago.)
			if len(reported[s.Name]) == 0 && !a.moving(s.Name) && a.allKnown(s, alive) {
				seen["lost:"+s.Name] = true
				if a.holds("lost:"+s.Name, now, 10*time.Second) {
					a.takeover(s, "it runs on no node, and none knows where it ran", alive, "")
				}
			}
			continue
		}
		if len(r) == 1 && r[0] == owner && alive(owner) && a.evacuate[owner] && !a.moving(s.Name) {
			// Its node drained itself for an early warning: handed over while it still can
			// (signals.go), once: a report sent before the handover ended still says it runs there.
			if !a.handedOverRecently(s.Name, now) {
				a.handOver(s, owner, alive)
			}
			continue
		}
		if a.moving(s.Name) && !down[owner] {
			// A planned migration: between its dump and its restore the service runs nowhere
			// and its target holds a created copy; that is neither gone nor stale.
			continue
		}
		switch {
		case down[owner]:
			a.takeover(s, fmt.Sprintf("its node %s is down", owner), alive, "")
		case len(r) == 0 && alive(owner) && a.unhealthy(owner, s.Name):
			if !a.unserved[s.Name] {
				a.takeover(s, fmt.Sprintf("its copy on %s fails its healthcheck", owner), alive, owner)
			}
		case len(r) == 0 && alive(owner) && a.known(owner, s.Name):
			// Alive but not running it (it fenced itself, or the service died): after a hold,
			// longer than a migration's pause, restore it from the standby.
			seen["gone:"+s.Name] = true
			if a.handedOverRecently(s.Name, now) {
				// Handed over: its newest state waits on the next node now; no hold.
				delete(a.handedOver, s.Name)
				a.takeover(s, fmt.Sprintf("%s handed it over (an early warning drained it)", owner), alive, "")
			} else if l, _ := a.reportOf(owner, s.Name); l.Fenced {
				// Its node's lease lapsed (it was not heard for a moment, or it stalled) and it killed
				// its copy: no hold, the service would run nowhere for it (a demo's did, 5 s, under the
				// load of a pulumi up on a 2-core lab machine, with its node never declared down).
				a.takeover(s, fmt.Sprintf("%s fenced it (its lease lapsed)", owner), alive, "")
			} else if a.holds("gone:"+s.Name, now, 5*time.Second) {
				a.takeover(s, fmt.Sprintf("it no longer runs on %s", owner), alive, "")
			}
		case len(r) > 1:
			for _, n := range r {
				if n != owner {
					a.order(s.Name, n, "fence", map[string]any{"service": s.Name}, fmt.Sprintf("a second copy runs on %s (owner %s)", n, owner))
				}
			}
		default:
			a.reconcile(s, owner, alive, now, seen)
		}
	}
	for k := range a.firstSeen {
		if !seen[k] {
			delete(a.firstSeen, k)
		}
	}
}

// waiting: whether an order in flight for `service` holds it (no other
// decision about it meanwhile), at `now`. Not when the node the order waits
// on is down: a node cut off one way still receives an order and runs it,
// but its answer never comes, and the service, fenced there when its lease
// lapses, would wait for the order's timeout before anyone restores it (the
// nemesis saw 56 s). The order, if it ever completes, changes nothing the
// reports do not correct: a takeover on a node without a lease is refused.
func (a *Agent) waiting(service string, now time.Time, down map[string]bool) bool {
	if !now.Before(a.busyUntil[service]) {
		return false
	}
	on := a.busyOn[service]
	if on == "" || !down[on] {
		return true
	}
	a.busyUntil[service] = time.Time{}
	a.eventLocked("unanswered", service, fmt.Sprintf("an order to %s is unanswered and %s is down: deciding without it", on, on))
	return false
}

// quorumWarning: when the voters still up are just a majority, what one more
// loss would do (nothing else: "" when there is room for a loss, or none left).
func (a *Agent) quorumWarning(down map[string]bool) string {
	gone := []string{}
	for _, m := range a.managers {
		if down[m.Name] {
			gone = append(gone, m.Name)
		}
	}
	up := len(a.managers) - len(gone)
	if len(gone) == 0 || up != majority(len(a.managers)) {
		return ""
	}
	return fmt.Sprintf("%d of %d voters are up (%s down): one more loss stops automatic failover", up, len(a.managers), strings.Join(gone, ", "))
}

// unhealthy: whether `node` reports its running copy of `service` unhealthy.
func (a *Agent) unhealthy(node, service string) bool {
	l, ok := a.reportOf(node, service)
	return ok && l.State == "running" && l.Health == healthUnhealthy
}

// takeover restores the service where the newest good synced checkpoint is:
// every node that is up and may run it is asked (its standby should have it,
// but the controllers' record of the standby can be a moment old), then told
// to restore it and to sync to the next preferred node. `replaced`, when not
// "", is a node whose copy runs unhealthy: it is not a candidate, and its copy
// is fenced only once another node has a checkpoint to restore (a hung copy
// beats none).
func (a *Agent) takeover(s Service, why string, alive func(string) bool, replaced string) {
	candidates := a.restoreCandidates(s, alive, replaced)
	a.eventLocked("failover", s.Name, fmt.Sprintf("%s: restoring it from the newest synced checkpoint among %s", why, strings.Join(candidates, ", ")))
	a.busyUntil[s.Name] = time.Now().Add(60 * time.Second)
	a.busyOn[s.Name] = ""
	// The node the owner's sync fed holds the newest state; up, it is waited for (holderWait). Up as a
	// majority sees it, not this controller: cut off from this one only, it is what holderWait is for.
	holder := a.holder(s.Name)
	holderUp := holder != "" && holder != replaced && a.downVotes(holder, time.Now()) < majority(len(a.managers))
	go func() {
		best, bestTaken := "", 0.0
		answered := map[string]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range candidates {
			wg.Add(1)
			go func(n string) {
				defer wg.Done()
				out, err := a.post(n, "newest", map[string]any{"service": s.Name})
				mu.Lock()
				defer mu.Unlock()
				answered[n] = err == nil
				f := strings.Fields(out)
				if err != nil || len(f) < 2 {
					return
				}
				taken, _ := strconv.ParseFloat(f[1], 64)
				if taken > bestTaken {
					best, bestTaken = n, taken
				}
			}(n)
		}
		wg.Wait()
		a.mu.Lock()
		if a.holderWait(s.Name, holder, holderUp && !answered[holder] && best != holder, time.Now()) {
			a.busyUntil[s.Name] = time.Now().Add(2 * time.Second) // asked again then
			a.mu.Unlock()
			return
		}
		if best == "" && replaced != "" {
			a.unserved[s.Name] = true // until a copy serves again
			a.busyUntil[s.Name] = time.Now().Add(2 * time.Second)
			a.eventLocked("stuck", s.Name, fmt.Sprintf("%s, but no other node that is up (%s) has a good synced checkpoint of it: its copy on %s is left running", why, strings.Join(candidates, ", "), replaced))
			a.mu.Unlock()
			return
		}
		if best == "" {
			a.busyUntil[s.Name] = time.Now().Add(2 * time.Second)
			if !a.stuck[s.Name] {
				a.stuck[s.Name] = true
				a.eventLocked("stuck", s.Name, fmt.Sprintf("%s, but no node that is up (%s) has a good synced checkpoint of it", why, strings.Join(candidates, ", ")))
			}
			a.mu.Unlock()
			return
		}
		a.stuck[s.Name] = false
		a.busyOn[s.Name] = best
		next := a.nextStandby(s, best, alive)
		a.mu.Unlock()
		if replaced != "" {
			// Two copies never run: the unhealthy one goes before the restore.
			if _, err := a.post(replaced, "fence", map[string]any{"service": s.Name}); err != nil {
				a.mu.Lock()
				a.busyUntil[s.Name] = time.Now().Add(2 * time.Second)
				a.eventLocked("error", s.Name, fmt.Sprintf("fencing its unhealthy copy on %s failed, so it is not restored elsewhere: %v", replaced, err))
				a.mu.Unlock()
				return
			}
		}
		args := map[string]any{"service": s.Name, "interval": s.SyncInterval, "maxLag": s.MaxLag}
		if next != "" {
			args["standby"], args["standbyAddress"] = next, a.byName[next].Address
		}
		out, err := a.post(best, "takeover", args)
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			a.busyUntil[s.Name] = time.Now().Add(2 * time.Second)
			a.eventLocked("error", s.Name, fmt.Sprintf("takeover on %s failed: %v", best, err))
			return
		}
		a.owner[s.Name] = best
		a.busyUntil[s.Name] = time.Now().Add(a.heartbeat + time.Second) // until its reports say so
		a.eventLocked("restored", s.Name, fmt.Sprintf("runs on %s, new standby %s: %s", best, orNone(next), strings.TrimSpace(out)))
	}()
}

// holder: the standby the last report of `service`'s owner named (the node its
// sync fed: the newest state of it), or "" when none is known.
func (a *Agent) holder(service string) string {
	if o := a.owner[service]; o != "" {
		if l, ok := a.reportOf(o, service); ok {
			return l.Standby
		}
	}
	return ""
}

// holderWait: whether a takeover of `service` waits (and asks again) rather
// than restore from an older checkpoint elsewhere, at `now`: `missing` says
// that the node holding its newest state (`holder`) is up but did not answer
// (cut off from this controller only, its agent just restarted). Restoring
// from the next best node then loses every write since that node stopped
// being the standby (a nemesis run restored a checkpoint 33 s old during a
// pair-partition; this is the likeliest way, its events were not kept). At
// most 20 s, after which the best answer is taken (and said).
func (a *Agent) holderWait(service, holder string, missing bool, now time.Time) bool {
	if !missing {
		delete(a.holderSince, service)
		return false
	}
	since, waiting := a.holderSince[service]
	if !waiting {
		a.holderSince[service] = now
		a.eventLocked("waiting", service, fmt.Sprintf("%s holds its newest state and is up but did not answer: asking again rather than restoring an older one", holder))
		return true
	}
	if now.Sub(since) < 20*time.Second {
		return true
	}
	delete(a.holderSince, service)
	a.eventLocked("waiting", service, fmt.Sprintf("%s, which holds its newest state, has not answered for %v: restoring the newest state the others hold", holder, now.Sub(since).Round(time.Second)))
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none (no other node is up)"
	}
	return s
}

// nextStandby: the first node in the service's preference that is up, is not
// `primary` and is not drained.
func (a *Agent) nextStandby(s Service, primary string, alive func(string) bool) string {
	for _, n := range s.Nodes {
		if n != primary && alive(n) && !a.drained[n] {
			return n
		}
	}
	return ""
}

// reconcile, for a service running once on `owner`: copies left elsewhere are
// removed, and the standby is the preferred node that is up.
func (a *Agent) reconcile(s Service, owner string, alive func(string) bool, now time.Time, seen map[string]bool) {
	for _, n := range s.Nodes {
		if n == owner || !alive(n) {
			continue
		}
		if l, ok := a.reportOf(n, s.Name); ok && l.State != "unknown" && (l.State != "absent" || l.Standby != "") {
			key := "stale:" + s.Name + ":" + n
			seen[key] = true
			if a.holds(key, now, staleHold(l.State)) {
				a.order(s.Name, n, "fence", map[string]any{"service": s.Name}, fmt.Sprintf("%s has a stale copy of it (%s)", n, l.State))
				return
			}
		}
	}
	want := a.nextStandby(s, owner, func(n string) bool {
		l, _ := a.reportOf(n, s.Name)
		return alive(n) && l.State == "absent" && l.Standby == ""
	})
	have, _ := a.reportOf(owner, s.Name)
	if want == "" || have.Standby == want {
		return
	}
	key := "standby:" + s.Name + ":" + want
	seen[key] = true
	if a.holds(key, now, 3*time.Second) {
		a.order(s.Name, owner, "sync", map[string]any{"service": s.Name, "standby": want, "standbyAddress": a.byName[want].Address, "interval": s.SyncInterval, "maxLag": s.MaxLag},
			fmt.Sprintf("its standby should be %s (now %s)", want, orNone(have.Standby)))
	}
}

// staleHold: how long a copy of a service in `state` on a node that does not
// run it is left before it is fenced. A created copy is a migration's target
// for a moment (or a restore under way): longer than either. An exited one is
// what a node that crashed or was cut off left (a migration's source is left
// alone while it is marked moving): it goes as soon as the node's engine has
// said so twice, so a booted node is clean within seconds of its engine.
func staleHold(state string) time.Duration {
	if state == "exited" {
		return time.Second
	}
	return 5 * time.Second
}

// order sends an order to a node's agent in the background; the service is busy meanwhile.
func (a *Agent) order(service, node, what string, args map[string]any, why string) {
	a.eventLocked(what, service, fmt.Sprintf("%s: %s on %s", why, what, node))
	a.busyUntil[service] = time.Now().Add(60 * time.Second)
	a.busyOn[service] = node
	go func() {
		_, err := a.post(node, what, args)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.busyUntil[service] = time.Now().Add(2 * time.Second) // its reports catch up
		if err != nil {
			a.eventLocked("error", service, fmt.Sprintf("%s on %s failed: %v", what, node, err))
		}
	}()
}
