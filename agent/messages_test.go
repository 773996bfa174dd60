package main

import (
	"bytes"
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
