package main

import (
	"fmt"
	"testing"
	"time"
)

// cluster: three controllers a, b, c on a fake clock, exchanging heartbeats
// and views every tick (a quarter heartbeat) over the links that are up.
type cluster struct {
	t      *testing.T
	agents map[string]*Agent
	cut    map[[2]string]bool // a pair that cannot hear each other, both ways
	dead   map[string]bool
	now    time.Time
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, agents: map[string]*Agent{}, cut: map[[2]string]bool{}, dead: map[string]bool{}, now: t0}
	for _, n := range []string{"a", "b", "c"} {
		c.agents[n] = threeManagers(t, n)
	}
	return c
}

func (c *cluster) linked(x, y string) bool {
	return !c.dead[x] && !c.dead[y] && !c.cut[[2]string{x, y}] && !c.cut[[2]string{y, x}]
}

// tick: 50 ms pass; every live controller hears the others it is linked to,
// gets their views, then decides. Returns who acts.
func (c *cluster) tick() []string {
	c.now = c.now.Add(ms(50))
	for from, fa := range c.agents {
		for to, ta := range c.agents {
			if from == to || !c.linked(from, to) {
				continue
			}
			ta.heard[from] = c.now
			ta.views[from] = peerView{received: c.now, ages: fa.viewLocked(c.now), vote: fa.vote}
		}
	}
	acting := []string{}
	for _, n := range []string{"a", "b", "c"} {
		if c.dead[n] {
			continue
		}
		a := c.agents[n]
		a.castVote(a.choice(c.now), c.now)
		if a.acting(c.now) {
			acting = append(acting, n)
		}
	}
	return acting
}

// run: ticks for d; fails on any tick with two actors; what acted last.
func (c *cluster) run(d time.Duration, what string) []string {
	var acting []string
	for end := c.now.Add(d); c.now.Before(end); {
		acting = c.tick()
		if len(acting) > 1 {
			c.t.Fatalf("%s: %v act at once, %v after start", what, acting, c.now.Sub(t0))
		}
	}
	return acting
}

func TestOneControllerActsAfterTheStartHold(t *testing.T) {
	c := newCluster(t)
	if got := c.run(ms(2000), "start"); fmt.Sprint(got) != "[a]" {
		t.Errorf("all linked: the first manager acts, got %v", got)
	}
}

func TestAPartitionBetweenTwoControllersOnlyLeavesOneActing(t *testing.T) {
	c := newCluster(t)
	c.run(ms(2000), "start")
	// a and b lose each other; c hears both. b suspects a after downAfter and
	// would back itself, but c still backs a: b never has a majority.
	c.cut[[2]string{"a", "b"}] = true
	if got := c.run(ms(5000), "a|b partition"); fmt.Sprint(got) != "[a]" {
		t.Errorf("a keeps acting (c backs it), got %v", got)
	}
	if c.agents["b"].vote != "b" {
		t.Errorf("b backs itself (it hears b and c, a majority), got %q", c.agents["b"].vote)
	}
	delete(c.cut, [2]string{"a", "b"})
	if got := c.run(ms(2000), "healed"); fmt.Sprint(got) != "[a]" {
		t.Errorf("healed: a acts, got %v", got)
	}
}

func TestWhenTheActingControllerDiesTheNextActsAfterTheHold(t *testing.T) {
	c := newCluster(t)
	c.run(ms(2000), "start")
	c.dead["a"] = true
	died := c.now
	for len(c.tick()) == 0 {
		if c.now.Sub(died) > ms(3000) {
			t.Fatal("nobody acts 3 s after the acting controller died")
		}
	}
	took := c.now.Sub(died)
	// downAfter (800 ms) for b and c to suspect a, then voteHold (200 ms), within a tick or two.
	if took < ms(1000) || took > ms(1150) {
		t.Errorf("b acts %v after a died, want 1-1.15 s (downAfter + voteHold)", took)
	}
	if got := c.run(ms(2000), "a dead"); fmt.Sprint(got) != "[b]" {
		t.Errorf("b acts, got %v", got)
	}
}

func TestACutOffControllerNeverActs(t *testing.T) {
	c := newCluster(t)
	c.run(ms(2000), "start")
	c.cut[[2]string{"a", "b"}], c.cut[[2]string{"a", "c"}] = true, true
	if got := c.run(ms(5000), "a cut off"); fmt.Sprint(got) != "[b]" {
		t.Errorf("b acts for the majority side, got %v", got)
	}
	if c.agents["a"].acting(c.now) || c.agents["a"].vote != "" {
		t.Errorf("a hears no majority: it backs nobody and does not act (vote %q)", c.agents["a"].vote)
	}
}
