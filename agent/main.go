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
//     never enough); the first live controller in inventory order then has the
//     dead primary's standby restore the service from its newest synced
//     checkpoint and sync to a new standby;
//   - orders (takeover, sync, fence) arrive over HTTP signed with the
//     cluster's secret and are carried out by edge-ha-ctl, the shell side that
//     edge-ha's TypeScript generates (lib/agent.ts).
//
// Why fencing is safe: a node's lease runs from the send time of the newest
// heartbeat that a majority of controllers acknowledged, plus leaseMs. The
// controllers act only when a majority of them have heard nothing for
// downAfterMs; two majorities share a controller, so by then the lease has
// lapsed for at least downAfterMs - leaseMs, the time the node has to kill
// its copy.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type Config struct {
	Self        string    `json:"self"`
	Port        int       `json:"port"`
	Secret      string    `json:"secret"`
	HeartbeatMs int       `json:"heartbeatMs"`
	DownAfterMs int       `json:"downAfterMs"`
	LeaseMs     int       `json:"leaseMs"`
	Nodes       []Node    `json:"nodes"`
	Services    []Service `json:"services"`
	Ctl         string    `json:"ctl"`
	Events      string    `json:"events"`
	State       string    `json:"state"`
}

type Node struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Manager bool   `json:"manager"`
}

// Service is one service the controllers fail over; Nodes is its placement
// preference: declared primary, declared standby, then the other hosts.
type Service struct {
	Name         string   `json:"name"`
	Nodes        []string `json:"nodes"`
	SyncInterval float64  `json:"syncInterval"`
}

// Local is what a node reports of one managed service: its container's state
// (running, exited, created, absent, or unknown when its engine did not
// answer) and the standby its sync loop feeds.
type Local struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Standby string `json:"standby,omitempty"`
}

type Message struct {
	Type  string           `json:"type"` // hb, ack (to a heartbeat), view (controller to controller)
	From  string           `json:"from"`
	Seq   uint64           `json:"seq"`
	Local []Local          `json:"local,omitempty"`
	View  map[string]int64 `json:"view,omitempty"` // controllers: ms since each node was last heard
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
}

type Agent struct {
	cfg       Config
	start     time.Time
	conn      *net.UDPConn
	heartbeat time.Duration
	downAfter time.Duration
	lease     time.Duration
	byName    map[string]Node
	managers  []Node

	mu     sync.Mutex
	seq    uint64
	sentAt map[uint64]time.Time
	acked  map[string]time.Time // manager -> send time of the newest heartbeat it acknowledged
	local  []Local
	fenced bool // the lease lapsed and this node's copies were killed

	// controller
	heard      map[string]time.Time
	reports    map[string][]Local
	views      map[string]peerView
	owner      map[string]string
	busyUntil  map[string]time.Time
	downSince  map[string]time.Time
	firstSeen  map[string]time.Time // reconcile conditions, by key, since when they hold
	stuck      map[string]bool      // services that cannot fail over, said once
	eventsFile *os.File
}

func main() {
	configPath := flag.String("config", "/etc/edge-ha/agent.json", "agent configuration (written by pulumi up)")
	flag.Parse()
	data, err := os.ReadFile(*configPath)
	if err != nil {
		log.Fatalf("reading %s: %v", *configPath, err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		log.Fatalf("%s: %v", *configPath, err)
	}
	a, err := newAgent(cfg)
	if err != nil {
		log.Fatalf("%s: %v", *configPath, err)
	}
	a.run()
}

func newAgent(cfg Config) (*Agent, error) {
	a := &Agent{
		cfg: cfg, start: time.Now(), byName: map[string]Node{},
		heartbeat: time.Duration(cfg.HeartbeatMs) * time.Millisecond,
		downAfter: time.Duration(cfg.DownAfterMs) * time.Millisecond,
		lease:     time.Duration(cfg.LeaseMs) * time.Millisecond,
		sentAt:    map[uint64]time.Time{}, acked: map[string]time.Time{},
		heard: map[string]time.Time{}, reports: map[string][]Local{}, views: map[string]peerView{},
		owner: map[string]string{}, busyUntil: map[string]time.Time{},
		downSince: map[string]time.Time{}, firstSeen: map[string]time.Time{}, stuck: map[string]bool{},
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
	conn, err := net.ListenUDP("udp", &net.UDPAddr{Port: cfg.Port})
	if err != nil {
		return nil, err
	}
	a.conn = conn
	if cfg.Events != "" {
		if st, err := os.Stat(cfg.Events); err == nil && st.Size() > 1<<20 {
			os.Rename(cfg.Events, cfg.Events+".1") // one old generation is kept
		}
		if f, err := os.OpenFile(cfg.Events, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			a.eventsFile = f
		}
	}
	return a, nil
}

func (a *Agent) isManager() bool { return a.byName[a.cfg.Self].Manager }

func (a *Agent) run() {
	a.event("start", "", fmt.Sprintf("agent started (heartbeat %v, down after %v, lease %v, controller: %v)", a.heartbeat, a.downAfter, a.lease, a.isManager()))
	go a.receive()
	go a.serveOrders()
	go a.every(time.Second, a.refreshLocal)
	go a.every(a.heartbeat/4, a.checkLease)
	go a.every(time.Second, a.writeState)
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

// --- messages ---------------------------------------------------------------

func (a *Agent) sign(b []byte) string {
	m := hmac.New(sha256.New, []byte(a.cfg.Secret))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

func (a *Agent) send(to Node, msg Message) {
	body, _ := json.Marshal(msg)
	packet := append([]byte(a.sign(body)+"\n"), body...)
	addr := &net.UDPAddr{IP: net.ParseIP(to.Address), Port: a.cfg.Port}
	a.conn.WriteToUDP(packet, addr)
}

func (a *Agent) sendHeartbeats() {
	a.mu.Lock()
	a.seq++
	now := time.Now()
	a.sentAt[a.seq] = now
	for s, t := range a.sentAt {
		if now.Sub(t) > 10*time.Second {
			delete(a.sentAt, s)
		}
	}
	msg := Message{Type: "hb", From: a.cfg.Self, Seq: a.seq, Local: a.local}
	a.mu.Unlock()
	for _, m := range a.managers {
		a.send(m, msg)
	}
}

// viewLocked: how many ms ago this controller heard each node.
func (a *Agent) viewLocked(now time.Time) map[string]int64 {
	view := map[string]int64{}
	for _, n := range a.cfg.Nodes {
		view[n.Name] = now.Sub(a.lastHeard(n.Name)).Milliseconds()
	}
	return view
}

// sendView tells the other controllers how long ago this one heard each node.
func (a *Agent) sendView() {
	a.mu.Lock()
	msg := Message{Type: "view", From: a.cfg.Self, View: a.viewLocked(time.Now())}
	a.mu.Unlock()
	for _, m := range a.managers {
		if m.Name != a.cfg.Self {
			a.send(m, msg)
		}
	}
}

func (a *Agent) receive() {
	buf := make([]byte, 65536)
	for {
		n, _, err := a.conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		mac, body, ok := bytes.Cut(buf[:n], []byte("\n"))
		if !ok || !hmac.Equal(mac, []byte(a.sign(body))) {
			continue // not ours, or forged
		}
		var msg Message
		if json.Unmarshal(body, &msg) != nil {
			continue
		}
		from, known := a.byName[msg.From]
		if !known {
			continue
		}
		now := time.Now()
		switch msg.Type {
		case "hb":
			if !a.isManager() {
				continue
			}
			a.mu.Lock()
			a.heard[msg.From] = now
			a.reports[msg.From] = msg.Local
			a.mu.Unlock()
			a.send(from, Message{Type: "ack", From: a.cfg.Self, Seq: msg.Seq})
		case "view":
			if a.isManager() && from.Manager {
				a.mu.Lock()
				a.views[msg.From] = peerView{received: now, ages: msg.View}
				a.mu.Unlock()
			}
		case "ack":
			a.mu.Lock()
			if t, ok := a.sentAt[msg.Seq]; ok && t.After(a.acked[msg.From]) {
				a.acked[msg.From] = t
			}
			a.mu.Unlock()
		}
	}
}

// --- lease and fencing (every node) -------------------------------------------

func majority(n int) int { return n/2 + 1 }

// leaseExpiry: the send time of the newest heartbeat a majority acknowledged,
// plus the lease. A fresh agent has one lease from its start, so that its
// restart does not kill a healthy service.
func (a *Agent) leaseExpiry() time.Time {
	times := []time.Time{}
	for _, m := range a.managers {
		if t, ok := a.acked[m.Name]; ok {
			times = append(times, t)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].After(times[j]) })
	expiry := a.start.Add(a.lease)
	if k := majority(len(a.managers)); len(times) >= k && times[k-1].Add(a.lease).After(expiry) {
		expiry = times[k-1].Add(a.lease)
	}
	return expiry
}

func (a *Agent) checkLease() {
	a.mu.Lock()
	valid := time.Now().Before(a.leaseExpiry())
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
	if !wasFenced {
		a.mu.Lock()
		a.fenced = true
		a.mu.Unlock()
		// Every managed service, not only those the last report saw: one may have started since.
		for _, s := range a.cfg.Services {
			a.fence(s.Name, "lease lapsed: no majority of controllers acknowledged this node's heartbeats")
		}
		a.refreshLocal()
		return
	}
	for _, l := range local {
		if l.State == "running" {
			a.fence(l.Name, "started while this node holds no lease")
		}
	}
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
		local = append(local, l)
	}
	a.mu.Lock()
	a.local = local
	a.mu.Unlock()
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

// --- controller (managers) --------------------------------------------------

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

// known: whether `node` could read the state of its copy of `service` (its engine answered).
func (a *Agent) known(node, service string) bool {
	l, ok := a.reportOf(node, service)
	return ok && l.State != "unknown"
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
	down := map[string]bool{}
	for _, n := range a.cfg.Nodes {
		down[n.Name] = a.downVotes(n.Name, now) >= majority(len(a.managers))
	}
	// Every controller keeps track of where each service runs, so that any of them can act.
	running := map[string][]string{}
	for _, s := range a.cfg.Services {
		for _, n := range s.Nodes {
			if l, ok := a.reportOf(n, s.Name); ok && l.State == "running" && !down[n] {
				running[s.Name] = append(running[s.Name], n)
			}
		}
		if r := running[s.Name]; len(r) == 1 && now.After(a.busyUntil[s.Name]) {
			a.owner[s.Name] = r[0]
		}
	}
	// The acting controller: the first manager, in inventory order, that this one hears;
	// and only while it hears a majority (a cut-off minority never acts).
	heard := 0
	for _, m := range a.managers {
		if !a.suspect(m.Name, now) {
			heard++
		}
	}
	if heard < majority(len(a.managers)) {
		return
	}
	for _, m := range a.managers {
		if m.Name == a.cfg.Self {
			break
		}
		if !a.suspect(m.Name, now) {
			return
		}
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
	alive := func(n string) bool { return !down[n] && !a.suspect(n, now) }
	seen := map[string]bool{}
	for _, s := range a.cfg.Services {
		if now.Before(a.busyUntil[s.Name]) {
			continue
		}
		owner := a.owner[s.Name]
		if owner == "" {
			continue
		}
		r := running[s.Name]
		switch {
		case down[owner]:
			a.takeover(s, fmt.Sprintf("its node %s is down", owner), alive)
		case len(r) == 0 && alive(owner) && a.known(owner, s.Name):
			// Alive but not running it (it fenced itself, or the service died): after a hold,
			// longer than a migration's pause, restore it from the standby.
			seen["gone:"+s.Name] = true
			if a.holds("gone:"+s.Name, now, 5*time.Second) {
				a.takeover(s, fmt.Sprintf("it no longer runs on %s", owner), alive)
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

// takeover restores the service where the newest good synced checkpoint is:
// every node that is up and may run it is asked (its standby should have it,
// but the controllers' record of the standby can be a moment old), then told
// to restore it and to sync to the next preferred node.
func (a *Agent) takeover(s Service, why string, alive func(string) bool) {
	candidates := []string{}
	for _, n := range s.Nodes {
		if alive(n) {
			candidates = append(candidates, n)
		}
	}
	a.eventLocked("failover", s.Name, fmt.Sprintf("%s: restoring it from the newest synced checkpoint among %s", why, strings.Join(candidates, ", ")))
	a.busyUntil[s.Name] = time.Now().Add(60 * time.Second)
	go func() {
		best, bestTaken := "", 0.0
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range candidates {
			wg.Add(1)
			go func(n string) {
				defer wg.Done()
				out, err := a.post(n, "newest", map[string]any{"service": s.Name})
				f := strings.Fields(out)
				if err != nil || len(f) < 2 {
					return
				}
				taken, _ := strconv.ParseFloat(f[1], 64)
				mu.Lock()
				if taken > bestTaken {
					best, bestTaken = n, taken
				}
				mu.Unlock()
			}(n)
		}
		wg.Wait()
		a.mu.Lock()
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
		next := a.nextStandby(s, best, alive)
		a.mu.Unlock()
		args := map[string]any{"service": s.Name, "interval": s.SyncInterval}
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

func orNone(s string) string {
	if s == "" {
		return "none (no other node is up)"
	}
	return s
}

// nextStandby: the first node in the service's preference that is up and is not `primary`.
func (a *Agent) nextStandby(s Service, primary string, alive func(string) bool) string {
	for _, n := range s.Nodes {
		if n != primary && alive(n) {
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
			// Held longer than a migration, whose target has a created copy for a moment.
			if a.holds(key, now, 5*time.Second) {
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
		a.order(s.Name, owner, "sync", map[string]any{"service": s.Name, "standby": want, "standbyAddress": a.byName[want].Address, "interval": s.SyncInterval},
			fmt.Sprintf("its standby should be %s (now %s)", want, orNone(have.Standby)))
	}
}

// order sends an order to a node's agent in the background; the service is busy meanwhile.
func (a *Agent) order(service, node, what string, args map[string]any, why string) {
	a.eventLocked(what, service, fmt.Sprintf("%s: %s on %s", why, what, node))
	a.busyUntil[service] = time.Now().Add(60 * time.Second)
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

// --- orders (HTTP, signed) --------------------------------------------------

func (a *Agent) post(node, what string, args map[string]any) (string, error) {
	body, _ := json.Marshal(args)
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s:%d/v1/%s", a.byName[node].Address, a.cfg.Port, what), bytes.NewReader(body))
	req.Header.Set("X-Edge-Ha-Mac", a.sign(append([]byte(what+"\n"), body...)))
	client := http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (a *Agent) serveOrders() {
	mux := http.NewServeMux()
	handle := func(what string, run func(args map[string]any) (string, error)) {
		mux.HandleFunc("/v1/"+what, func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
			if r.Method != "POST" || !hmac.Equal([]byte(r.Header.Get("X-Edge-Ha-Mac")), []byte(a.sign(append([]byte(what+"\n"), body...)))) {
				http.Error(w, "unsigned order", http.StatusForbidden)
				return
			}
			var args map[string]any
			if err := json.Unmarshal(body, &args); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			out, err := run(args)
			a.refreshLocal()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			io.WriteString(w, out)
		})
	}
	str := func(args map[string]any, k string) string { s, _ := args[k].(string); return s }
	intervalMs := func(args map[string]any) string {
		f, _ := args["interval"].(float64)
		return strconv.Itoa(int(f * 1000))
	}
	sync := func(args map[string]any) (string, error) {
		if str(args, "standby") == "" {
			return "", nil
		}
		return a.ctl("sync", str(args, "service"), str(args, "standby"), str(args, "standbyAddress"), intervalMs(args))
	}
	handle("takeover", func(args map[string]any) (string, error) {
		a.mu.Lock()
		fenced := a.fenced
		a.mu.Unlock()
		if fenced {
			return "", fmt.Errorf("%s holds no lease: it may be cut off itself", a.cfg.Self)
		}
		out, err := a.ctl("restore", str(args, "service"))
		if err != nil {
			return out, err
		}
		a.event("restored", str(args, "service"), "restored here: "+strings.TrimSpace(out))
		more, err := sync(args)
		return strings.TrimSpace(out + "\n" + more), err
	})
	handle("newest", func(args map[string]any) (string, error) {
		return a.ctl("newest", str(args, "service"))
	})
	handle("sync", func(args map[string]any) (string, error) {
		out, err := sync(args)
		if err == nil {
			a.event("sync", str(args, "service"), "syncing to "+str(args, "standby"))
		}
		return out, err
	})
	handle("fence", func(args map[string]any) (string, error) {
		a.fence(str(args, "service"), "ordered by the controller")
		return "", nil
	})
	server := &http.Server{Addr: fmt.Sprintf(":%d", a.cfg.Port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(server.ListenAndServe())
}

// --- events and state ---------------------------------------------------------

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
	state := map[string]any{
		"node": a.cfg.Self, "at": now.UTC(), "controller": a.isManager(),
		"leaseMs": a.leaseExpiry().Sub(now).Milliseconds(), "fenced": a.fenced,
		"local": a.local, "heardMsAgo": view, "owners": a.owner,
	}
	a.mu.Unlock()
	data, _ := json.Marshal(state)
	tmp := a.cfg.State + ".tmp"
	if os.WriteFile(tmp, data, 0o644) == nil {
		os.Rename(tmp, a.cfg.State)
	}
}
