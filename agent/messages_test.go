package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// pair: a controller and a node of one cluster (one secret), as newState makes them.
func pair(t *testing.T) (controller, node *Agent) {
	t.Helper()
	cfg := Config{Secret: "s3cret", HeartbeatMs: 200, LeaseMs: 500, DownAfterMs: 800, Nodes: []Node{{Name: "a", Manager: true}, {Name: "b"}}}
	mk := func(self string) *Agent {
		cfg.Self = self
		a, err := newState(cfg, t0)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	return mk("a"), mk("b")
}

func TestACapturedHeartbeatReplayedIsDropped(t *testing.T) {
	a, b := pair(t)
	first := b.packet(Message{Type: "hb", From: "b", Seq: 1})
	if _, ok := a.accept(first); !ok {
		t.Fatal("a fresh heartbeat is taken")
	}
	if _, ok := a.accept(first); ok {
		t.Error("the same heartbeat again (captured and replayed): taken, want dropped")
	}
	second := b.packet(Message{Type: "hb", From: "b", Seq: 2})
	if _, ok := a.accept(second); !ok {
		t.Error("the next heartbeat: dropped, want taken")
	}
	if _, ok := a.accept(first); ok {
		t.Error("an older heartbeat after a newer one: taken, want dropped")
	}
}

func TestARestartedSenderIsHeardAndItsOldRunIsNotReplayable(t *testing.T) {
	a, b := pair(t)
	old := b.packet(Message{Type: "hb", From: "b"})
	a.accept(old)
	_, restarted := pair(t) // b again, a new run
	fresh := restarted.packet(Message{Type: "hb", From: "b"})
	if _, ok := a.accept(fresh); !ok {
		t.Fatal("the restarted node's first heartbeat (numbered 1 again, in a new run): dropped, want taken")
	}
	if _, ok := a.accept(b.packet(Message{Type: "hb", From: "b"})); ok {
		t.Error("a message of the run it left (replayed from a capture): taken, want dropped")
	}
}

func TestForgedAndUnknownMessagesAreDropped(t *testing.T) {
	a, b := pair(t)
	p := b.packet(Message{Type: "hb", From: "b"})
	forged := bytes.Replace(p, []byte(`"hb"`), []byte(`"ack"`), 1)
	if _, ok := a.accept(forged); ok {
		t.Error("a changed body under the old signature: taken, want dropped")
	}
	if _, ok := a.accept(b.packet(Message{Type: "hb", From: "z"})); ok {
		t.Error("from a node not in the config: taken, want dropped")
	}
}

func TestAnOrderIsTakenOnceFromTheSendersCurrentRunOnly(t *testing.T) {
	a := threeManagers(t, "w")
	b := threeManagers(t, "b")
	stamp := func(n uint64) orderStamp { return orderStamp{From: "b", Run: fmt.Sprintf("%x", b.runID), N: n} }
	if err := a.orderFresh(stamp(1)); err == nil {
		t.Error("an order from a controller never heard: taken, want refused (its run is unknown)")
	}
	if !a.freshLocked(Message{From: "b", Run: b.runID, N: 1}) {
		t.Fatal("b's first message: dropped")
	}
	for _, n := range []uint64{3, 1, 2} { // concurrent orders may overtake each other
		if err := a.orderFresh(stamp(n)); err != nil {
			t.Errorf("order %d of b's current run: %v, want taken", n, err)
		}
	}
	if err := a.orderFresh(stamp(2)); err == nil || !strings.Contains(err.Error(), "a replay") {
		t.Errorf("order 2 again (captured and replayed): %v, want refused as a replay", err)
	}
	if err := a.orderFresh(stamp(3 + orderWindow + 5)); err != nil {
		t.Errorf("a much later order: %v, want taken", err)
	}
	if err := a.orderFresh(stamp(4)); err == nil {
		t.Error("an order older than the window (never taken, but as old as a capture): taken, want refused")
	}
	old := b.runID
	b.runID++ // b restarts: a new run
	if !a.freshLocked(Message{From: "b", Run: b.runID, N: 1}) {
		t.Fatal("b's first message of its new run: dropped")
	}
	if err := a.orderFresh(orderStamp{From: "b", Run: fmt.Sprintf("%x", old), N: 1000}); err == nil || !strings.Contains(err.Error(), "not b's current run") {
		t.Errorf("an order of b's run before its restart: %v, want refused", err)
	}
	if err := a.orderFresh(stamp(1)); err != nil {
		t.Errorf("order 1 of b's new run: %v, want taken", err)
	}
	if err := a.orderFresh(orderStamp{From: "w", Run: fmt.Sprintf("%x", a.runID), N: 1}); err == nil || !strings.Contains(err.Error(), "not a controller") {
		t.Errorf("an order from a node that is not a controller: %v, want refused", err)
	}
	self := threeManagers(t, "a")
	if err := self.orderFresh(orderStamp{From: "a", Run: fmt.Sprintf("%x", self.runID), N: 1}); err != nil {
		t.Errorf("a controller's order to its own node: %v, want taken", err)
	}
}
