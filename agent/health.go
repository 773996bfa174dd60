// Health checks, on every node that runs services: each managed service with
// a healthcheck is checked on its own schedule while it runs here. A copy
// that passed once and then failed Retries checks in a row is unhealthy, and
// the controllers replace it from the standby's newest checkpoint. Its sync
// loop sends only checkpoints a later passing check vouches for, and none
// from its first failed check on: the standby holds the last state known to
// serve (a hang that began just before a checkpoint is not restored). A copy
// that has not passed since it started here is only "starting": a check that
// never passes (a wrong path, say) leaves the service running and shown,
// rather than replaced again and again.

package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// What a node reports of a copy's health (Local.Health); "" when its service has no healthcheck.
const (
	healthStarting  = "starting"
	healthHealthy   = "healthy"
	healthFailing   = "failing"
	healthUnhealthy = "unhealthy"
)

// health is what the checks found of this node's copy of one service since it started running.
type health struct {
	passed bool   // it passed a check
	fails  int    // checks failed in a row
	last   string // why the last one failed
}

func (h health) status(retries int) string {
	switch {
	case !h.passed:
		return healthStarting
	case h.fails == 0:
		return healthHealthy
	case h.fails < retries:
		return healthFailing
	default:
		return healthUnhealthy
	}
}

// errSkipped: the check could not run now (a checkpoint of the service holds its lock, or its copy is paused).
var errSkipped = errors.New("skipped")

// lagPauseMark: present while the copy's sync loop holds it paused because
// its standby's newest checkpoint is older than the service's maxLag
// (host/edge-ha-sync; lib/host/paths.ts lagPauseMarkPrefix). A paused copy
// answers nothing and is not failing: counted unhealthy, it would be replaced
// from the standby's old checkpoint, losing the very writes the pause keeps.
const lagPauseMarkPrefix = "/run/edge-ha-lag-paused-"

// probe runs one check of this node's copy of s.
func (a *Agent) probe(s Service) error {
	if _, err := os.Stat(a.lagPauseMark + s.Name); a.lagPauseMark != "" && err == nil {
		return errSkipped
	}
	h := s.Health
	timeout := time.Duration(h.TimeoutMs) * time.Millisecond
	// The node's own address, not 127.0.0.1: Docker's userland proxy accepts
	// on loopback whether or not the container listens.
	addr := net.JoinHostPort(a.byName[a.cfg.Self].Address, strconv.Itoa(h.Port))
	switch h.Kind {
	case "tcp":
		conn, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	case "http":
		client := http.Client{Timeout: timeout}
		resp, err := client.Get("http://" + addr + h.Path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", h.Path, resp.Status)
		}
		return nil
	case "command":
		seconds := strconv.FormatFloat(float64(h.TimeoutMs)/1000, 'f', 3, 64)
		out, err := a.ctl(append([]string{"check", s.Name, seconds}, h.Command...)...)
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 75 {
			return errSkipped
		}
		if err != nil {
			return fmt.Errorf("%s: %s", strings.Join(h.Command, " "), lastLine(out+" "+err.Error()))
		}
		return nil
	}
	return fmt.Errorf("unknown healthcheck kind %q", h.Kind)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// watchHealth checks this node's copy of s every interval while it runs here,
// and leaves the verdict where its sync loop reads it (edge-ha-ctl health).
func (a *Agent) watchHealth(s Service) {
	// A mark a copy left here before this agent started is not this copy's.
	a.ctl("health", s.Name, "off")
	// How long the sync loop waits for a check begun after its checkpoint: the
	// next one begins within an interval and a check's time, and ends within another.
	wait := strconv.Itoa(s.Health.IntervalMs + 2*s.Health.TimeoutMs + 500)
	for {
		time.Sleep(time.Duration(s.Health.IntervalMs) * time.Millisecond)
		a.mu.Lock()
		running := false
		for _, l := range a.local {
			running = running || (l.Name == s.Name && l.State == "running")
		}
		before, had := a.health[s.Name]
		a.mu.Unlock()
		if !running {
			if had {
				a.mu.Lock()
				delete(a.health, s.Name)
				a.setLocalHealthLocked(s.Name, "")
				a.mu.Unlock()
				a.ctl("health", s.Name, "off")
			}
			continue
		}
		// A check vouches for checkpoints taken before it began: it may have been answered at once.
		began := strconv.FormatInt(time.Now().UnixMilli(), 10)
		err := a.probe(s)
		if errors.Is(err, errSkipped) {
			continue
		}
		after := before
		var marked error
		switch {
		case err == nil:
			after.passed, after.fails, after.last = true, 0, ""
			_, marked = a.ctl("health", s.Name, "passed", began, wait)
		case after.passed:
			after.fails++
			after.last = err.Error()
			_, marked = a.ctl("health", s.Name, "failing")
		} // a copy that has not passed yet has nothing to hold back
		a.mu.Lock()
		a.health[s.Name] = after
		a.setLocalHealthLocked(s.Name, after.status(s.Health.Retries))
		a.mu.Unlock()
		if marked != nil && (before.fails == 0) != (after.fails == 0) {
			a.event("error", s.Name, "could not tell its sync loop: "+marked.Error())
		}
		a.healthChanged(s, before, after)
	}
}

// healthChanged tells what changed.
func (a *Agent) healthChanged(s Service, before, after health) {
	was, now := before.status(s.Health.Retries), after.status(s.Health.Retries)
	switch {
	case before.fails == 0 && after.fails == 1:
		a.event("failing", s.Name, fmt.Sprintf("its healthcheck failed (%s): no checkpoint is sent until it passes", after.last))
	case before.fails > 0 && after.fails == 0:
		a.event("healthy", s.Name, fmt.Sprintf("its healthcheck passes again after %d failures", before.fails))
	case was != now && now == healthHealthy:
		a.event("healthy", s.Name, "its healthcheck passes")
	}
	if was != now && now == healthUnhealthy {
		a.event("unhealthy", s.Name, fmt.Sprintf("its healthcheck failed %d times in a row (last: %s)", after.fails, after.last))
	}
}

// setLocalHealthLocked puts a copy's health in the report the heartbeats carry.
func (a *Agent) setLocalHealthLocked(service, status string) {
	for i := range a.local {
		if a.local[i].Name == service {
			a.local[i].Health = status
		}
	}
}

// healthOfLocked: the health to report for this node's copy of service.
func (a *Agent) healthOfLocked(s Service) string {
	h, ok := a.health[s.Name]
	if s.Health == nil || !ok {
		return ""
	}
	return h.status(s.Health.Retries)
}
