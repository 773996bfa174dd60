// Heartbeats and acknowledgements (every node), views between controllers:
// UDP datagrams, each signed with the cluster's secret.

package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net"
	"time"
)

func (a *Agent) sign(b []byte) string {
	m := hmac.New(sha256.New, []byte(a.cfg.Secret))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

func (a *Agent) send(to Node, msg Message) {
	addr := &net.UDPAddr{IP: net.ParseIP(to.Address), Port: a.cfg.Port}
	a.conn.WriteToUDP(a.packet(msg), addr)
}

// packet: msg numbered in this run and signed, as it goes on the wire.
func (a *Agent) packet(msg Message) []byte {
	a.mu.Lock()
	a.sent++
	msg.Run, msg.N = a.runID, a.sent
	a.mu.Unlock()
	body, _ := json.Marshal(msg)
	return append([]byte(a.sign(body)+"\n"), body...)
}

// accept: the message in packet when it is signed with the cluster's secret,
// from a known node, and fresh.
func (a *Agent) accept(packet []byte) (Message, bool) {
	var msg Message
	mac, body, ok := bytes.Cut(packet, []byte("\n"))
	if !ok || !hmac.Equal(mac, []byte(a.sign(body))) {
		return msg, false // not ours, or forged
	}
	if json.Unmarshal(body, &msg) != nil {
		return msg, false
	}
	if _, known := a.byName[msg.From]; !known {
		return msg, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return msg, a.freshLocked(msg)
}

// peerRun: what a receiver knows of a sender's runs.
type peerRun struct {
	run  uint64
	n    uint64
	past []uint64 // runs it had before (the last few)
}

// freshLocked: whether msg comes after every message taken from its sender.
// Signatures alone let a captured heartbeat be replayed, and a dead node
// seem alive. Within a run a message must be numbered above the last one
// taken (an old or reordered one is dropped: another follows within a
// heartbeat); a run never seen is the sender restarted; a run seen before
// and left is a replay. No clock is trusted (a Pi without a real-time clock
// boots in the past). What remains: right after this agent starts, one
// replayed message of a sender's older run may be taken, until the
// sender's next message.
func (a *Agent) freshLocked(msg Message) bool {
	p := a.peers[msg.From]
	switch {
	case p == nil:
		a.peers[msg.From] = &peerRun{run: msg.Run, n: msg.N}
		return true
	case msg.Run == p.run:
		if msg.N <= p.n {
			return false
		}
		p.n = msg.N
		return true
	}
	for _, r := range p.past {
		if r == msg.Run {
			return false
		}
	}
	p.past = append(p.past, p.run)
	if len(p.past) > 16 {
		p.past = p.past[1:]
	}
	p.run, p.n = msg.Run, msg.N
	return true
}

func randomRun() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
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
	msg.Drained = a.selfDrained()
	msg.Evacuate = msg.Drained && a.evacuating()
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
	if a.stalled(time.Now()) {
		a.mu.Unlock()
		return // what it heard before the stall is not news (stall.go)
	}
	msg := Message{Type: "view", From: a.cfg.Self, View: a.viewLocked(time.Now()), Vote: a.vote}
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
		msg, ok := a.accept(buf[:n])
		if !ok {
			continue
		}
		from := a.byName[msg.From]
		now := time.Now()
		switch msg.Type {
		case "hb":
			if !a.isManager() {
				continue
			}
			a.mu.Lock()
			a.heard[msg.From] = now
			a.reports[msg.From] = msg.Local
			a.noteDrainedLocked(msg.From, msg.Drained)
			a.evacuate[msg.From] = msg.Evacuate
			a.mu.Unlock()
			a.send(from, Message{Type: "ack", From: a.cfg.Self, Seq: msg.Seq})
		case "view":
			if a.isManager() && from.Manager {
				a.mu.Lock()
				a.views[msg.From] = peerView{received: now, ages: msg.View, vote: msg.Vote}
				a.mu.Unlock()
			}
		case "ack":
			a.mu.Lock()
			if t, ok := a.sentAt[msg.Seq]; ok {
				a.noteAckLocked(msg.From, t, time.Now())
			}
			a.mu.Unlock()
		}
	}
}
