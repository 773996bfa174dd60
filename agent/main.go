// edge-ha-agent runs on every node of an edge-ha cluster (pulumi up installs
// it, modules/failover-agent). It is what restores a dead node's services with
// no operator:
//
//   - every node sends a heartbeat to the controllers (the swarm managers)
//     every heartbeatMs and holds a lease while a majority of them answer; a
//     node whose lease lapses kills its copies of the managed services
//     (fencing): cut off, it must assume it has been replaced;
//   - every manager is also a controller: a node is down when a majority of
//     controllers have not heard it for downAfterMs (one lost heartbeat is
//     never enough); the one controller a majority of controllers back
//     (actor.go) then has the dead primary's standby restore the service
//     from its newest synced checkpoint and sync to a new standby;
//   - orders (takeover, sync, fence) arrive over HTTP signed with the
//     cluster's secret and are carried out by edge-ha-ctl, the shell side that
//     edge-ha's TypeScript generates (lib/ha/agent.ts).
//
// Why fencing is safe: a node's lease runs from the send time of the newest
// heartbeat that a majority of controllers acknowledged, plus leaseMs. The
// controllers act only when a majority of them have heard nothing for
// downAfterMs; two majorities share a controller, so by then the lease has
// lapsed for at least downAfterMs - leaseMs, the time the node has to kill
// its copy.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"time"
)

func main() {
	configPath := flag.String("config", "/etc/edge-ha/agent.json", "agent configuration (written by pulumi up)")
	watchdog := flag.Bool("watchdog", false, "run as the watchdog (watchdog.go), not as the agent")
	flag.Parse()
	data, err := os.ReadFile(*configPath)
	if err != nil {
		log.Fatalf("reading %s: %v", *configPath, err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		log.Fatalf("%s: %v", *configPath, err)
	}
	if *watchdog {
		a, err := newState(cfg, time.Now())
		if err != nil {
			log.Fatalf("%s: %v", *configPath, err)
		}
		a.openEvents()
		a.runWatchdog()
		return
	}
	a, err := newAgent(cfg)
	if err != nil {
		log.Fatalf("%s: %v", *configPath, err)
	}
	a.leaseFile = leaseFile
	a.lagPauseMark = lagPauseMarkPrefix
	if _, err := os.Stat(leaseFile); errors.Is(err, fs.ErrNotExist) {
		a.startLease = firstStartLease(a.lease)
	}
	a.run()
}

// newAgent: the agent for cfg, listening on its port, appending to its events file.
func newAgent(cfg Config) (*Agent, error) {
	a, err := newState(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{Port: cfg.Port})
	if err != nil {
		return nil, err
	}
	a.conn = conn
	if st, err := os.Stat(cfg.Events); cfg.Events != "" && err == nil && st.Size() > 1<<20 {
		os.Rename(cfg.Events, cfg.Events+".1") // one old generation is kept
	}
	a.openEvents()
	return a, nil
}

// openEvents: appends its events to the configured file (the agent and its watchdog share it: O_APPEND lines).
func (a *Agent) openEvents() {
	if a.cfg.Events == "" {
		return
	}
	if f, err := os.OpenFile(a.cfg.Events, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		a.eventsFile = f
	}
}

// newState: the agent's decisions' state for cfg, started at `start`, with no
// socket or file (what the tests build).
func newState(cfg Config, start time.Time) (*Agent, error) {
	a := &Agent{
		cfg: cfg, start: start, byName: map[string]Node{},
		heartbeat:  time.Duration(cfg.HeartbeatMs) * time.Millisecond,
		downAfter:  time.Duration(cfg.DownAfterMs) * time.Millisecond,
		lease:      time.Duration(cfg.LeaseMs) * time.Millisecond,
		startLease: time.Duration(cfg.LeaseMs) * time.Millisecond,
		sentAt:     map[uint64]time.Time{}, acked: map[string]time.Time{},
		heard: map[string]time.Time{}, reports: map[string][]Local{}, views: map[string]peerView{},
		owner: map[string]string{}, busyUntil: map[string]time.Time{}, busyOn: map[string]string{},
		downSince: map[string]time.Time{}, firstSeen: map[string]time.Time{}, stuck: map[string]bool{}, holderSince: map[string]time.Time{},
		health: map[string]health{}, selfFenced: map[string]time.Time{}, unserved: map[string]bool{}, drained: map[string]bool{},
		evacuate: map[string]bool{}, handedOver: map[string]time.Time{}, drainedFor: map[string]bool{},
		runID: randomRun(), peers: map[string]*peerRun{},
	}
	if cfg.NoQuorum != "" && cfg.NoQuorum != "stop" && cfg.NoQuorum != "freeze" {
		return nil, fmt.Errorf("noQuorum: expected stop or freeze, found %q", cfg.NoQuorum)
	}
	if cfg.HeartbeatMs <= 0 || cfg.LeaseMs <= cfg.HeartbeatMs || cfg.DownAfterMs <= cfg.LeaseMs {
		return nil, fmt.Errorf("expected 0 < heartbeatMs < leaseMs < downAfterMs, found %d, %d, %d", cfg.HeartbeatMs, cfg.LeaseMs, cfg.DownAfterMs)
	}
	for _, n := range cfg.Nodes {
		a.byName[n.Name] = n
		if n.Manager {
			a.managers = append(a.managers, n)
		}
	}
	if _, ok := a.byName[cfg.Self]; !ok {
		return nil, fmt.Errorf("self %q is not among the nodes", cfg.Self)
	}
	if len(a.managers) == 0 {
		return nil, fmt.Errorf("no manager among the nodes")
	}
	return a, nil
}

func (a *Agent) isManager() bool { return a.byName[a.cfg.Self].Manager }

func (a *Agent) isWitness() bool { return a.byName[a.cfg.Self].Witness }

// noQuorum: what this node does when its lease lapses (stop unless told freeze).
func (a *Agent) noQuorum() string {
	if a.cfg.NoQuorum == "freeze" {
		return "freeze"
	}
	return "stop"
}

func (a *Agent) run() {
	first := ""
	if a.startLease != a.lease {
		first = fmt.Sprintf(" (%v from this first start since boot until a majority answers)", a.startLease)
	}
	a.event("start", "", fmt.Sprintf("agent started (heartbeat %v, down after %v, lease %v%s, controller: %v, witness: %v, no quorum: %s)", a.heartbeat, a.downAfter, a.lease, first, a.isManager(), a.isWitness(), a.noQuorum()))
	go a.receive()
	go a.serveOrders()
	go a.every(time.Second, a.refreshLocal)
	// A safety net (the host scripts move the addresses themselves), so not every second: each
	// round is a shell and a docker inspect per address, on a Pi's CPU too.
	go a.every(5*time.Second, a.keepVips)
	for _, s := range a.cfg.Services {
		if s.Health != nil && !a.isWitness() {
			go a.watchHealth(s)
		}
	}
	go a.every(a.heartbeat/4, a.checkLease)
	if a.cfg.Signals != nil && a.cfg.Signals.Policy != "" {
		go a.every(2*time.Second, a.checkSignals)
	}
	// Each heartbeat, not each second: the dashboard reads whom this controller hears from it,
	// and a second between writes made its "down" a second later than the agents'.
	go a.every(a.heartbeat, a.writeState)
	if a.isManager() {
		// Controllers tell each other what they hear four times a heartbeat: a
		// majority's verdict then lags the slowest vote by a quarter heartbeat, not one.
		go a.every(a.heartbeat/4, func() { a.sendView(); a.control() })
	}
	a.every(a.heartbeat, a.sendHeartbeats)
}

func (a *Agent) every(d time.Duration, f func()) {
	for {
		f()
		time.Sleep(d)
	}
}
