package main

import (
	"strings"
	"testing"
	"time"
)

// The agent's decisions, on a fake clock: t0 is when the agent started.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func threeManagers(t *testing.T, self string) *Agent {
	t.Helper()
	a, err := newState(Config{
		Self: self, HeartbeatMs: 200, LeaseMs: 500, DownAfterMs: 800,
		Nodes: []Node{{Name: "a", Manager: true}, {Name: "b", Manager: true}, {Name: "c", Manager: true}, {Name: "w"}},
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMajority(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3} {
		if got := majority(n); got != want {
			t.Errorf("majority(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestLeaseRunsFromTheNewestHeartbeatAMajorityAcknowledged(t *testing.T) {
	a := threeManagers(t, "w")
	if got := a.leaseExpiry(); !got.Equal(t0.Add(ms(500))) {
		t.Errorf("a fresh agent's lease: %v after start, want 500ms", got.Sub(t0))
	}
	a.acked["a"] = t0.Add(ms(2000))
	if got := a.leaseExpiry(); !got.Equal(t0.Add(ms(500))) {
		t.Errorf("one controller of three is no majority: lease %v after start, want 500ms", got.Sub(t0))
	}
	a.acked["b"] = t0.Add(ms(1000))
	if got := a.leaseExpiry(); !got.Equal(t0.Add(ms(1500))) {
		t.Errorf("two of three: the older of the two newest counts: %v after start, want 1.5s", got.Sub(t0))
	}
	a.acked["c"] = t0.Add(ms(3000))
	if got := a.leaseExpiry(); !got.Equal(t0.Add(ms(2500))) {
		t.Errorf("three of three: the second newest counts: %v after start, want 2.5s", got.Sub(t0))
	}
}

func TestADownVerdictNeedsAMajorityOfFreshVotes(t *testing.T) {
	a := threeManagers(t, "a")
	a.heard["w"] = t0
	now := t0.Add(ms(1000))
	if !a.suspect("w", now) {
		t.Fatal("not heard for 1s with downAfter 800ms: suspected")
	}
	if a.suspect("w", t0.Add(ms(700))) {
		t.Error("not heard for 700ms: not yet suspected (one lost heartbeat never decides)")
	}
	if got := a.downVotes("w", now); got != 1 {
		t.Errorf("only this controller's own vote: %d, want 1", got)
	}
	a.views["b"] = peerView{received: t0.Add(ms(950)), ages: map[string]int64{"w": 900}}
	a.views["c"] = peerView{received: t0, ages: map[string]int64{"w": 5000}}
	if got := a.downVotes("w", now); got != 2 {
		t.Errorf("b's fresh view votes, c's stale one (1s old) does not: %d, want 2", got)
	}
	if a.downVotes("w", now) < majority(len(a.managers)) {
		t.Error("2 of 3 controllers: down")
	}
	a.heard["b"] = t0.Add(ms(900))
	a.views["b"] = peerView{received: t0.Add(ms(950)), ages: map[string]int64{"b": 5000}}
	if got := a.downVotes("b", now); got != 0 {
		t.Errorf("a controller's view of itself is no vote, and a heard b 100ms ago: %d, want 0", got)
	}
}

func TestNobodyIsSuspectedBeforeDownAfterHasPassedSinceStart(t *testing.T) {
	a := threeManagers(t, "a")
	if a.suspect("w", t0.Add(ms(799))) {
		t.Error("never heard, 799ms after start: not suspected")
	}
	if !a.suspect("w", t0.Add(ms(800))) {
		t.Error("never heard, 800ms after start: suspected")
	}
}

func TestNextStandbyIsThePreferredLiveNodeOtherThanThePrimary(t *testing.T) {
	a := threeManagers(t, "a")
	s := Service{Name: "counter", Nodes: []string{"a", "b", "c"}}
	up := map[string]bool{"a": true, "b": false, "c": true}
	if got := a.nextStandby(s, "a", func(n string) bool { return up[n] }); got != "c" {
		t.Errorf("b is down: got %q, want c", got)
	}
	if got := a.nextStandby(s, "c", func(n string) bool { return up[n] }); got != "a" {
		t.Errorf("running on c: got %q, want a", got)
	}
	if got := a.nextStandby(s, "a", func(string) bool { return false }); got != "" {
		t.Errorf("nobody else up: got %q, want none", got)
	}
}

func TestHoldsStartsItsClockThenAnswersAfterTheDuration(t *testing.T) {
	a := threeManagers(t, "a")
	if a.holds("k", t0, ms(500)) {
		t.Error("first sight: not held yet")
	}
	if a.holds("k", t0.Add(ms(499)), ms(500)) {
		t.Error("499ms: not yet")
	}
	if !a.holds("k", t0.Add(ms(500)), ms(500)) {
		t.Error("500ms: held")
	}
}

func TestBadConfigsAreRefusedWithWhatWasFound(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Self: "a", HeartbeatMs: 500, LeaseMs: 500, DownAfterMs: 800, Nodes: []Node{{Name: "a", Manager: true}}}, "expected 0 < heartbeatMs < leaseMs < downAfterMs, found 500, 500, 800"},
		{Config{Self: "x", HeartbeatMs: 200, LeaseMs: 500, DownAfterMs: 800, Nodes: []Node{{Name: "a", Manager: true}}}, `self "x" is not among the nodes`},
		{Config{Self: "a", HeartbeatMs: 200, LeaseMs: 500, DownAfterMs: 800, Nodes: []Node{{Name: "a"}}}, "no manager among the nodes"},
	} {
		if _, err := newState(c.cfg, t0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error with %q", err, c.want)
		}
	}
}

func TestAMigrationUnderWayIsLeftAlone(t *testing.T) {
	a := threeManagers(t, "a")
	a.reports["b"] = []Local{{Name: "counter", State: "exited"}}
	a.reports["c"] = []Local{{Name: "counter", State: "created"}}
	if a.moving("counter") {
		t.Error("no node reports a move: not moving")
	}
	a.reports["c"] = []Local{{Name: "counter", State: "created", Moving: true}}
	if !a.moving("counter") {
		t.Error("the target reports the move: moving")
	}
	if a.moving("web") {
		t.Error("another service is not moving")
	}
}
