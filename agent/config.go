// The agent's configuration (written by pulumi up, lib/ha/agent.ts agentConfig),
// what nodes report, and the agent's own state.

package main

import (
	"net"
	"os"
	"sync"
	"time"
)

type Config struct {
	Self        string `json:"self"`
	Port        int    `json:"port"`
	Secret      string `json:"secret"`
	HeartbeatMs int    `json:"heartbeatMs"`
	DownAfterMs int    `json:"downAfterMs"`
	LeaseMs     int    `json:"leaseMs"`
	// NoQuorum: what this node does when its lease lapses: "stop" kills its
	// copies of the managed services, "freeze" keeps what runs.
	NoQuorum string    `json:"noQuorum"`
	Nodes    []Node    `json:"nodes"`
	Services []Service `json:"services"`
	Ctl      string    `json:"ctl"`
	Events   string    `json:"events"`
	State    string    `json:"state"`
	// Drained: the file whose presence says this node is drained (edge-ha node
	// drain): it runs nothing new, is no failover target and no standby.
	Drained string `json:"drained,omitempty"`
	// Signals: where this node's health signals are read and what a critical
	// one does (signals.go); nil: none are read.
	Signals *SignalsConfig `json:"signals,omitempty"`
}

type Node struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Manager: a voter and a controller (swarm managers and witnesses).
	Manager bool `json:"manager"`
	// Witness: it votes and controls but runs no services (no Docker there).
	Witness bool `json:"witness"`
}

// Service is one service the controllers fail over; Nodes is its placement
// preference: declared primary, declared standby, then the other hosts.
type Service struct {
	Name         string   `json:"name"`
	Nodes        []string `json:"nodes"`
	SyncInterval float64  `json:"syncInterval"`
	// MaxLag: seconds the standby's newest checkpoint may lag before the sync
	// loop pauses the service (host/edge-ha-sync); 0: never.
	MaxLag float64 `json:"maxLag,omitempty"`
	// Health: how a copy is told to serve (health.go); nil: running is serving.
	Health *HealthCheck `json:"health,omitempty"`
}

// HealthCheck is a service's healthcheck (lib/config/service-spec.ts HealthCheck; health.go runs it).
type HealthCheck struct {
	Kind       string   `json:"kind"` // tcp, http or command
	Port       int      `json:"port,omitempty"`
	Path       string   `json:"path,omitempty"`
	Command    []string `json:"command,omitempty"`
	IntervalMs int      `json:"intervalMs"`
	TimeoutMs  int      `json:"timeoutMs"`
	Retries    int      `json:"retries"`
}

// Local is what a node reports of one managed service: its container's state
// (running, exited, created, absent, or unknown when its engine did not
// answer) and the standby its sync loop feeds.
type Local struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Standby string `json:"standby,omitempty"`
	// Moving: a planned migration of the service touches this node now (edge-ha
	// migrate marks both ends); the controllers leave the service alone meanwhile.
	Moving bool `json:"moving,omitempty"`
	// Health: starting, healthy, failing or unhealthy (health.go); "" without a healthcheck.
	Health string `json:"health,omitempty"`
	// Fenced: this node's lease lapsed and it killed its copy of the service,
	// within selfFencedFor, and has not run it since (lease.go). The
	// controllers restore it at once rather than after the "gone" hold: what
	// ended it is known, and no migration is under way.
	Fenced bool `json:"fenced,omitempty"`
	// Pid and ID: its container's first process and id, on this node only
	// (never sent): what a fence kills at once (kill.go).
	Pid int    `json:"-"`
	ID  string `json:"-"`
}

type Message struct {
	Type string `json:"type"` // hb, ack (to a heartbeat), view (controller to controller)
	From string `json:"from"`
	Seq  uint64 `json:"seq"`
	// Run and N: the sender's run (random at its start) and its message
	// count in that run; a receiver takes each sender's messages in order,
	// once (messages.go fresh), so a captured one replayed is dropped.
	Run   uint64           `json:"run"`
	N     uint64           `json:"n"`
	Local []Local          `json:"local,omitempty"`
	View  map[string]int64 `json:"view,omitempty"` // controllers: ms since each node was last heard
	// Vote: the controller this one backs as the acting one ("" while it backs
	// nobody); see actor.go.
	Vote string `json:"vote,omitempty"`
	// Drained: in a heartbeat, the sender is drained (Config.Drained);
	// Evacuate: an early warning drained it, and its services are to be
	// handed over to other nodes (signals.go).
	Drained  bool `json:"drained,omitempty"`
	Evacuate bool `json:"evacuate,omitempty"`
}

type Event struct {
	At      time.Time `json:"at"`
	Node    string    `json:"node"`
	Kind    string    `json:"kind"`
	Service string    `json:"service,omitempty"`
	Message string    `json:"message"`
}

type peerView struct {
	received time.Time
	ages     map[string]int64
	vote     string
}

type Agent struct {
	cfg        Config
	start      time.Time
	conn       *net.UDPConn
	heartbeat  time.Duration
	downAfter  time.Duration
	lease      time.Duration
	startLease time.Duration // the lease from its start until a majority first answers (lease.go)
	byName     map[string]Node
	managers   []Node

	mu         sync.Mutex
	seq        uint64
	runID      uint64              // this agent's run: random at its start
	sent       uint64              // messages sent in this run
	peers      map[string]*peerRun // per sender: its current run, and the runs it had before
	sentAt     map[uint64]time.Time
	acked      map[string]time.Time // manager -> send time of the newest heartbeat it acknowledged
	local      []Local
	fenced     bool                 // the lease lapsed and this node's copies were killed
	selfFenced map[string]time.Time // services whose copy this node killed at a lapse of its lease, when (reported as Fenced)
	lapseSeen  bool                 // the lease ran out before an acknowledgement renewed it; checkLease has not acted yet
	health     map[string]health    // this node's running copies, by service (health.go)

	// controller
	heard        map[string]time.Time
	reports      map[string][]Local
	drained      map[string]bool      // nodes whose last heartbeat said they are drained
	evacuate     map[string]bool      // nodes whose last heartbeat asked for their services to be handed over (signals.go)
	handedOver   map[string]time.Time // services a node handed over, since when: restored at once, not after the "gone" hold
	signals      []Signal             // this node's signs of trouble now (signals.go)
	drainedFor   map[string]bool      // the critical signals this node drained itself for ("name level")
	views        map[string]peerView
	owner        map[string]string
	busyUntil    map[string]time.Time
	busyOn       map[string]string // the node an order in flight for the service waits on ("" while a takeover still asks around)
	leaseFile    string            // where the lease is written for the watchdog ("" in tests; watchdog.go)
	lagPauseMark string            // prefix of the marks of copies paused by their lag guard (health.go; a temp folder in tests)
	lastTick     time.Time         // when the agent's frequent loops last ran (stall.go)
	stalledUntil time.Time         // after a stall, no decision or view before this
	downSince    map[string]time.Time
	firstSeen    map[string]time.Time // reconcile conditions, by key, since when they hold
	stuck        map[string]bool      // services that cannot fail over, said once
	holderSince  map[string]time.Time // services whose takeover waits for the node with their newest state, since when (controller.go holderWait)
	unserved     map[string]bool      // services whose unhealthy copy nothing can replace, said once
	warned       string               // the quorum warning last given ("" when none holds)
	vote         string               // the controller this one backs now ("" while none; actor.go)
	wanted       string               // the controller it would back
	wantedAt     time.Time            // since when it would
	wasActing    bool                 // whether it acted at its last decision (for the "acting" event)
	eventsFile   *os.File
	vipError     string                // the last error keeping the virtual addresses, said once (vips.go)
	orderN       uint64                // orders sent in this run (orders.go)
	ordersSeen   map[string]*orderSeen // per sender, the orders taken (orders.go orderFresh)
}
