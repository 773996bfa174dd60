// The lease and fencing, on every node: a node whose lease lapses kills its
// copies of the managed services.

package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func majority(n int) int { return n/2 + 1 }

// leaseExpiry: the send time of the newest heartbeat a majority acknowledged,
// plus the lease. A fresh agent has one lease from its start (startLease), so
// that its restart does not kill a healthy service; until a majority has
// answered it once, only that one.
func (a *Agent) leaseExpiry() time.Time {
	times := []time.Time{}
	for _, m := range a.managers {
		if t, ok := a.acked[m.Name]; ok {
			times = append(times, t)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].After(times[j]) })
	k := majority(len(a.managers))
	if len(times) < k {
		return a.start.Add(a.startLease)
	}
	expiry := a.start.Add(a.lease)
	if times[k-1].Add(a.lease).After(expiry) {
		expiry = times[k-1].Add(a.lease)
	}
	return expiry
}

// firstStartLease: the lease of an agent's first start since its node booted
// (no lease file in /run yet), until a majority first answers. pulumi up
// starts the services before the agents, and the agents of a new cluster
// one host after another: with only the usual lease, the first agent up
// found no majority for 500 ms and killed the services already running on
// its node (a CI run lost its key-value store so, and with no checkpoint
// synced yet, for good). Safe for the node's copies: its agent has not run
// since boot, so no controller heard it (the services it had before a
// reboot are not restarted by Docker and were restored elsewhere once it was
// down), and a controller restores a service that runs where nobody hears
// only after a 10 s hold (controller.go). Left open: heartbeats heard by the
// controllers whose answers never reach this node, then a full cut, within
// these seconds.
func firstStartLease(lease time.Duration) time.Duration {
	return max(lease, 5*time.Second)
}

// noteAckLocked records that `from` acknowledged a heartbeat sent at `sent`
// (a.mu held). An acknowledgement that arrives after the lease ran out
// renews it only after the lapse is noted (a.lapseSeen), for checkLease to
// act on: a node frozen for seconds wakes, sends heartbeats and has them
// acknowledged within a millisecond, and when that came before its lease
// check ran, the lapse was never seen. The nemesis (seed 7101) saw a node
// thawed after 4.4 s keep both its copies, next to the ones the controllers
// had restored meanwhile, for 21 s; its watchdog, reading the renewed lease,
// saw nothing either.
func (a *Agent) noteAckLocked(from string, sent, now time.Time) {
	if !sent.After(a.acked[from]) {
		return
	}
	if !now.Before(a.leaseExpiry()) {
		a.lapseSeen = true
	}
	a.acked[from] = sent
}

func (a *Agent) checkLease() {
	if a.isWitness() {
		return // it runs no services: nothing to fence
	}
	a.mu.Lock()
	now := time.Now()
	a.noteTickLocked(now)
	expiry := a.leaseExpiry()
	// A lapse an acknowledgement renewed since counts once (noteAckLocked).
	valid := now.Before(expiry) && !a.lapseSeen
	a.lapseSeen = false
	if !valid && now.Before(expiry) {
		expiry = now // said so to the watchdog too: it fences if this check does not
	}
	a.writeLeaseLocked(now, expiry)
	wasFenced := a.fenced
	local := append([]Local(nil), a.local...)
	a.mu.Unlock()
	if valid {
		if wasFenced {
			a.mu.Lock()
			a.fenced = false
			a.mu.Unlock()
			a.event("lease", "", "a majority of controllers hears this node again")
		}
		return
	}
	if a.noQuorum() == "freeze" {
		// What runs goes on and nothing starts here (takeover is refused without a lease).
		if !wasFenced {
			a.mu.Lock()
			a.fenced = true
			a.mu.Unlock()
			a.event("freeze", "", "lease lapsed: no majority of controllers acknowledged this node's heartbeats; noQuorum freeze: keeping what runs here, starting nothing")
		}
		return
	}
	if !wasFenced {
		// The copies' processes first, at once: a node that stood still (frozen, a VM paused)
		// wakes with its copies serving again while the fences below go through Docker (a
		// second, and the nemesis saw two copies for that second).
		killed := killCopies(local)
		a.mu.Lock()
		a.fenced = true
		for _, l := range local {
			if l.State == "running" {
				a.selfFenced[l.Name] = now
			}
		}
		// Said to the watchdog before the fences, which take a while: else it fences too, at once.
		a.writeLeaseLocked(now, expiry)
		a.mu.Unlock()
		for _, s := range killed {
			a.event("fence", s, "lease lapsed: killed its processes at once (SIGKILL); its container goes next")
		}
		a.fenceAll("lease lapsed: no majority of controllers acknowledged this node's heartbeats")
		a.refreshLocal()
		return
	}
	for _, l := range local {
		if l.State == "running" {
			a.fence(l.Name, "started while this node holds no lease")
		}
	}
}

// fenceAll fences every managed service here, not only those the last report
// saw (one may have started since), all at once: a fence through Docker may
// take seconds, and one service's must not hold up another's.
func (a *Agent) fenceAll(why string) {
	var wg sync.WaitGroup
	for _, s := range a.cfg.Services {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			a.fence(name, why)
		}(s.Name)
	}
	wg.Wait()
}

func (a *Agent) fence(service, why string) {
	out, err := a.ctl("fence", service)
	if strings.TrimSpace(out) == "" && err == nil {
		return // nothing of it here
	}
	a.event("fence", service, fmt.Sprintf("%s: %s%s", why, strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(out), "\n", "; ")), " "), errText(err)))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// refreshLocal reads which managed services this node has (edge-ha-ctl report).
func (a *Agent) refreshLocal() {
	if a.isWitness() {
		return // no services, no Docker
	}
	names := []string{}
	for _, s := range a.cfg.Services {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return
	}
	out, err := a.ctl(append([]string{"report"}, names...)...)
	if err != nil {
		return
	}
	local := []Local{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		l := Local{Name: f[0], State: f[1]}
		if len(f) > 2 && f[2] != "-" {
			l.Standby = f[2]
		}
		l.Moving = len(f) > 3 && f[3] == "moving"
		if len(f) > 5 {
			l.Pid, _ = strconv.Atoi(f[4])
			l.ID = f[5]
		}
		local = append(local, l)
	}
	a.mu.Lock()
	now := time.Now()
	for i, l := range local {
		for _, s := range a.cfg.Services {
			if s.Name == l.Name && l.State == "running" {
				local[i].Health = a.healthOfLocked(s)
			}
		}
		local[i].Fenced = a.fencedHereLocked(l, now)
	}
	a.local = local
	a.mu.Unlock()
}

// selfFencedFor: how long a copy killed at a lapse of this node's lease is
// reported as Fenced: long enough for the controllers to hear it (they
// restore it at once), short enough that a report of long ago says nothing.
const selfFencedFor = 30 * time.Second

// fencedHereLocked: whether this node's report of `l` says it fenced the
// copy itself (a.mu held). A copy that runs here again is no longer fenced.
func (a *Agent) fencedHereLocked(l Local, now time.Time) bool {
	at, ok := a.selfFenced[l.Name]
	if !ok {
		return false
	}
	if l.State == "running" || now.Sub(at) > selfFencedFor {
		delete(a.selfFenced, l.Name)
		return false
	}
	return true
}

func (a *Agent) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, a.cfg.Ctl, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", a.cfg.Ctl, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
