// Heartbeats and acknowledgements (every node), views between controllers:
// UDP datagrams, each signed with the cluster's secret.

package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
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
				a.views[msg.From] = peerView{received: now, ages: msg.View, vote: msg.Vote}
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
