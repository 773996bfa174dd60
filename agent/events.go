// Events (a JSON line each, per host) and the state file that status reads.

package main

import (
	"encoding/json"
	"log"
	"os"
	"time"
)

func (a *Agent) event(kind, service, message string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.eventLocked(kind, service, message)
}

func (a *Agent) eventLocked(kind, service, message string) {
	e := Event{At: time.Now().UTC(), Node: a.cfg.Self, Kind: kind, Service: service, Message: message}
	line, _ := json.Marshal(e)
	log.Printf("%s", line)
	if a.eventsFile != nil {
		a.eventsFile.Write(append(line, '\n'))
	}
}

// writeState leaves this agent's view where `status` reads it (over SSH).
func (a *Agent) writeState() {
	if a.cfg.State == "" {
		return
	}
	a.mu.Lock()
	now := time.Now()
	view := map[string]int64{}
	if a.isManager() {
		view = a.viewLocked(now)
	}
	services := []string{}
	for _, s := range a.cfg.Services {
		services = append(services, s.Name)
	}
	state := map[string]any{
		"node": a.cfg.Self, "at": now.UTC(), "controller": a.isManager(), "witness": a.isWitness(), "services": services,
		"leaseMs": a.leaseExpiry().Sub(now).Milliseconds(), "fenced": a.fenced,
		"local": a.local, "heardMsAgo": view, "owners": a.owner,
		// Which controller this one backs, and whether a majority backs it (actor.go).
		"backs": a.vote, "acting": a.isManager() && a.acting(now),
		// The nodes the controller knows are drained (drain.go); a non-controller knows only itself.
		"drained": a.drainedNodesLocked(),
		// This node's signs of trouble (signals.go).
		"signals": a.signals,
	}
	a.mu.Unlock()
	data, _ := json.Marshal(state)
	tmp := a.cfg.State + ".tmp"
	if os.WriteFile(tmp, data, 0o644) == nil {
		os.Rename(tmp, a.cfg.State)
	}
}
