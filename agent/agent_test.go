package main

import (
	"os"
	"os/exec"
	"path/filepath"
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

func TestAFirstStartSinceBootKeepsItsLeaseSecondsUntilAMajorityAnswers(t *testing.T) {
	a := threeManagers(t, "a")
	a.startLease = firstStartLease(a.lease)
	if got := a.leaseExpiry(); !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("the first start since boot, alone: lease %v after start, want 5s (the other hosts' agents start later)", got.Sub(t0))
	}
	a.acked["a"] = t0.Add(ms(100))
	if got := a.leaseExpiry(); !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("its own answer is no majority: lease %v after start, want 5s", got.Sub(t0))
	}
	a.acked["b"] = t0.Add(ms(1000))
	if got := a.leaseExpiry(); !got.Equal(t0.Add(ms(600))) {
		t.Errorf("once a majority answered, the usual lease (from the older of the two answers): %v after start, want 600ms", got.Sub(t0))
	}
	if got := firstStartLease(8 * time.Second); got != 8*time.Second {
		t.Errorf("a lease longer than 5s is kept: %v", got)
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
		{Config{Self: "a", HeartbeatMs: 200, LeaseMs: 500, DownAfterMs: 800, NoQuorum: "ignore", Nodes: []Node{{Name: "a", Manager: true}}}, `noQuorum: expected stop or freeze, found "ignore"`},
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

func TestOneMoreLossIsWarnedOfWhenTheVotersUpAreJustAMajority(t *testing.T) {
	a := threeManagers(t, "a")
	if got := a.quorumWarning(map[string]bool{}); got != "" {
		t.Errorf("all three up: no warning, got %q", got)
	}
	if got := a.quorumWarning(map[string]bool{"w": true}); got != "" {
		t.Errorf("a node that does not vote is down: no warning, got %q", got)
	}
	if got, want := a.quorumWarning(map[string]bool{"c": true}), "2 of 3 voters are up (c down): one more loss stops automatic failover"; got != want {
		t.Errorf("c down: got %q, want %q", got, want)
	}
	if got := a.quorumWarning(map[string]bool{"b": true, "c": true}); got != "" {
		t.Errorf("no majority left: nothing to warn of (nothing acts), got %q", got)
	}
}

// agentWithCtl: a node (not a controller) whose edge-ha-ctl records its calls in the returned file.
func agentWithCtl(t *testing.T, cfg Config) (*Agent, string) {
	t.Helper()
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	ctl := filepath.Join(dir, "edge-ha-ctl")
	if err := os.WriteFile(ctl, []byte("#!/bin/sh\necho \"$*\" >>"+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.HeartbeatMs, cfg.LeaseMs, cfg.DownAfterMs, cfg.Ctl = 200, 500, 800, ctl
	cfg.Services = []Service{{Name: "counter", Nodes: []string{"n", "m"}}}
	a, err := newState(cfg, t0) // started long ago: its lease has lapsed
	if err != nil {
		t.Fatal(err)
	}
	return a, calls
}

func ctlCalls(calls string) string {
	out, _ := os.ReadFile(calls)
	return strings.TrimSpace(string(out))
}

func TestALapsedLeaseStopsTheNodesCopiesUnlessTheSiteChoseFreeze(t *testing.T) {
	nodes := []Node{{Name: "a", Manager: true}, {Name: "b", Manager: true}, {Name: "w", Manager: true, Witness: true}, {Name: "n"}, {Name: "m"}}
	stop, calls := agentWithCtl(t, Config{Self: "n", Nodes: nodes})
	stop.checkLease()
	if got := ctlCalls(calls); !strings.HasPrefix(got, "fence counter") {
		t.Errorf("noQuorum stop (the default): the lapsed lease fences its copies; edge-ha-ctl got %q", got)
	}
	freeze, calls := agentWithCtl(t, Config{Self: "n", Nodes: nodes, NoQuorum: "freeze"})
	freeze.checkLease()
	if got := ctlCalls(calls); got != "" {
		t.Errorf("noQuorum freeze: what runs is kept; edge-ha-ctl got %q", got)
	}
	if !freeze.fenced {
		t.Error("noQuorum freeze: the node knows it holds no lease (it refuses takeovers)")
	}
	witness, calls := agentWithCtl(t, Config{Self: "w", Nodes: nodes})
	witness.checkLease()
	witness.refreshLocal()
	if got := ctlCalls(calls); got != "" {
		t.Errorf("a witness runs no services: it neither reports nor fences; edge-ha-ctl got %q", got)
	}
}

func TestAnOrderInFlightHoldsItsServiceUnlessTheNodeItWaitsOnIsDown(t *testing.T) {
	a := threeManagers(t, "a")
	now := t0.Add(10 * time.Second)
	a.busyUntil["web"], a.busyOn["web"] = now.Add(50*time.Second), "b"
	if !a.waiting("web", now, map[string]bool{}) {
		t.Error("an order to b, which is up, is awaited")
	}
	if a.waiting("web", now, map[string]bool{"b": true}) {
		t.Error("an order to b, which is down, holds nothing: the service is decided on at once")
	}
	if a.waiting("web", now.Add(time.Second), map[string]bool{}) {
		t.Error("and its hold is gone for good, even once b is back")
	}
	a.busyUntil["web"], a.busyOn["web"] = now.Add(50*time.Second), ""
	if !a.waiting("web", now, map[string]bool{"b": true, "c": true}) {
		t.Error("a takeover still asking around is awaited (each of its questions times out by itself)")
	}
	if a.waiting("web", now.Add(51*time.Second), map[string]bool{}) {
		t.Error("past its time, no order holds")
	}
}

func TestAfterAStallTheAgentForgetsOwnersAndNeitherDecidesNorTellsItsViewForDownAfter(t *testing.T) {
	a := threeManagers(t, "a")
	a.noteTickLocked(t0)
	a.noteTickLocked(t0.Add(ms(50)))
	if a.stalled(t0.Add(ms(50))) {
		t.Error("ticks 50 ms apart are no stall")
	}
	a.owner["counter"] = "a"
	resumed := t0.Add(6 * time.Second)
	a.noteTickLocked(resumed)
	if a.owner["counter"] != "" {
		t.Error("after a stall, who owned the counter is forgotten: it may run elsewhere now")
	}
	if !a.stalled(resumed) || !a.stalled(resumed.Add(ms(799))) {
		t.Error("6 s without running: stalled for downAfter (800 ms) from the resume")
	}
	if a.stalled(resumed.Add(ms(800))) {
		t.Error("after downAfter, it decides again")
	}
	for t := 50; t <= 850; t += 50 {
		a.noteTickLocked(resumed.Add(ms(t)))
	}
	if a.stalled(resumed.Add(ms(850))) {
		t.Error("regular ticks after the stall start no new one")
	}
}

func TestTheWatchdogFencesOnlyWhenTheLeaseRanOutPastTheGraceAndTheAgentDidNot(t *testing.T) {
	cases := []struct {
		content string
		up      int64
		fence   bool
	}{
		{"10000 0\n", 9000, false},                               // leased
		{"10000 0\n", 10100, false},                              // ran out, but the agent has its grace to fence
		{"10000 0\n", 10200, true},                               // ran out past the grace, not fenced: the agent does not run
		{"10000 0\ncopy web 42 0123456789abcdef\n", 10200, true}, // with the copies the agent saw running here
		{"10000 1\n", 20000, false},                              // the agent fenced by itself
		{"freeze\n", 20000, false},                               // noQuorum freeze keeps copies by design
		{"", 20000, false},                                       // nothing written yet
	}
	for _, c := range cases {
		if fence, _ := leaseVerdict(c.content, c.up); fence != c.fence {
			t.Errorf("%q at %d: fence %v, want %v", c.content, c.up, fence, c.fence)
		}
	}
}

func TestANodeStartsNothingWithoutALeaseOrRightAfterAStall(t *testing.T) {
	a := threeManagers(t, "a")
	a.noteTickLocked(t0)
	if err := a.mayStart(t0.Add(ms(100))); err != nil {
		t.Errorf("within the lease a fresh agent has from its start: %v", err)
	}
	if err := a.mayStart(t0.Add(ms(450))); err != nil {
		t.Errorf("still within it: %v", err)
	}
	a.noteTickLocked(t0.Add(ms(480)))
	if err := a.mayStart(t0.Add(ms(520))); err == nil || !strings.Contains(err.Error(), "holds no lease") {
		t.Errorf("past its lease: %v", err)
	}
	for _, m := range []string{"a", "b", "c"} {
		a.acked[m] = t0.Add(6 * time.Second)
	}
	if err := a.mayStart(t0.Add(6*time.Second + ms(100))); err == nil || !strings.Contains(err.Error(), "resumed after a stall") {
		t.Errorf("an order served right after 5.5 s without running: %v", err)
	}
}

func TestAServiceIsLostOnlyWhenEveryNodeUpHasReportedItsCopy(t *testing.T) {
	a := threeManagers(t, "a")
	s := Service{Name: "counter", Nodes: []string{"a", "b", "c"}}
	up := func(n string) bool { return n != "c" }
	a.reports["a"] = []Local{{Name: "counter", State: "absent"}}
	a.reports["b"] = []Local{{Name: "counter", State: "unknown"}}
	if a.allKnown(s, up) {
		t.Error("b's engine did not answer: not known")
	}
	a.reports["b"] = []Local{{Name: "counter", State: "exited"}}
	if !a.allKnown(s, up) {
		t.Error("a and b, the nodes up, have both reported")
	}
	if a.allKnown(s, func(string) bool { return false }) {
		t.Error("no node up: nothing is known")
	}
}

func TestAStaleExitedCopyGoesSoonerThanACreatedOne(t *testing.T) {
	if staleHold("exited") > 2*time.Second {
		t.Errorf("an exited copy on a node that does not run the service waits %v, want at most 2 s (a booted node is clean within seconds of its engine)", staleHold("exited"))
	}
	if staleHold("created") < 5*time.Second {
		t.Errorf("a created copy (a migration's target) waits %v, want at least 5 s", staleHold("created"))
	}
}

func TestKillCopiesKillsOnlyAProcessStillInItsContainer(t *testing.T) {
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	copy, other := start(), start()
	defer other.Process.Kill()
	// The test's processes are in no container: the copy's pid stands for one in container "c0ffee…".
	const id = "c0ffee0123456789"
	belongs = func(pid int, in string) bool { return pid == copy.Process.Pid && in == id }
	defer func() { belongs = inContainer }()
	if got := killCopies([]Local{{Name: "web", State: "running", Pid: other.Process.Pid, ID: id}}); len(got) != 0 {
		t.Errorf("a pid no longer in the container (a number taken since): killed %v, want none", got)
	}
	if got := killCopies([]Local{{Name: "web", State: "exited", Pid: copy.Process.Pid, ID: id}}); len(got) != 0 {
		t.Errorf("a copy that does not run: killed %v, want none", got)
	}
	if got := killCopies([]Local{{Name: "counter", State: "running", Pid: copy.Process.Pid, ID: id}}); len(got) != 1 || got[0] != "counter" {
		t.Fatalf("killed %v, want [counter]", got)
	}
	if err := copy.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the copy's process ended with %v, want killed", err)
	}
}

func TestAProcessIsInAContainerWhenItsCgroupNamesTheID(t *testing.T) {
	mine, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skip("no /proc here")
	}
	first := strings.SplitN(string(mine), "\n", 2)[0]
	if !inContainer(os.Getpid(), first) {
		t.Errorf("its own cgroup line %q: not found, want found", first)
	}
	if inContainer(os.Getpid(), "0123456789abcdef0123456789abcdef") {
		t.Error("an id its cgroups do not name: found, want not")
	}
}

func TestATakeoverWaitsForTheUpNodeWithTheNewestStateAtMost20s(t *testing.T) {
	a := threeManagers(t, "a")
	a.owner["counter"] = "b"
	a.reports["b"] = []Local{{Name: "counter", State: "running", Standby: "c"}}
	if h := a.holder("counter"); h != "c" {
		t.Fatalf("holder: %q, want c (the standby b's sync fed)", h)
	}
	if a.holderWait("counter", "c", false, t0) {
		t.Error("c answered (or is down): no wait")
	}
	if !a.holderWait("counter", "c", true, t0) || !a.holderWait("counter", "c", true, t0.Add(19*time.Second)) {
		t.Error("c is up and did not answer: wait, up to 20 s")
	}
	if a.holderWait("counter", "c", true, t0.Add(21*time.Second)) {
		t.Error("after 20 s: restore from the best answer")
	}
	if !a.holderWait("counter", "c", true, t0.Add(30*time.Second)) {
		t.Error("a new takeover waits anew")
	}
	a.owner["counter"] = ""
	if h := a.holder("counter"); h != "" {
		t.Errorf("no owner known (after a stall): holder %q, want none", h)
	}
}

func TestOnlyAReportHeardWithinDownAfterSaysWhereAServiceRunsNow(t *testing.T) {
	a := threeManagers(t, "a")
	counter := Service{Name: "counter", Nodes: []string{"b", "c"}}
	now := t0.Add(time.Minute)
	// b was re-imaged a minute ago: its last report still says running. No peer votes it
	// down (c's agent has just restarted), so a majority does not call it down.
	a.reports["b"] = []Local{{Name: "counter", State: "running"}}
	a.heard["b"] = t0
	a.reports["c"] = []Local{{Name: "counter", State: "running"}}
	a.heard["c"] = now.Add(-ms(200))
	running, reported := a.copies(counter, map[string]bool{}, now)
	if strings.Join(running, ",") != "c" {
		t.Errorf("runs on %v, want c only: b's report is a minute old", running)
	}
	if strings.Join(reported, ",") != "b,c" {
		t.Errorf("reported on %v, want b,c: a lost service is not declared while b, not down, last said it runs it", reported)
	}
	if running, _ := a.copies(counter, map[string]bool{"c": true}, now); len(running) != 0 {
		t.Errorf("c down for a majority: runs on %v, want none", running)
	}
}

func TestTheLeaseFileListsTheCopiesRunningHereForTheWatchdogToKillAtOnce(t *testing.T) {
	a := threeManagers(t, "a")
	a.leaseFile = filepath.Join(t.TempDir(), "lease")
	a.local = []Local{
		{Name: "counter", State: "running", Pid: 4242, ID: "0123456789abcdef"},
		{Name: "web", State: "exited", Pid: 0},
		{Name: "kv", State: "running"}, // no pid known: nothing to kill, its fence through Docker does it
	}
	a.mu.Lock()
	a.writeLeaseLocked(t0, t0.Add(ms(500)))
	a.mu.Unlock()
	data, err := os.ReadFile(a.leaseFile)
	if err != nil {
		t.Fatal(err)
	}
	copies := leaseCopies(string(data))
	if len(copies) != 1 || copies[0].Name != "counter" || copies[0].Pid != 4242 || copies[0].ID != "0123456789abcdef" || copies[0].State != "running" {
		t.Errorf("copies %+v from %q, want counter's only", copies, data)
	}
	up, _ := uptimeMs()
	if fence, _ := leaseVerdict(string(data), up+10_000); !fence {
		t.Errorf("%q: the lease read past its end says fence", data)
	}
}

func TestALeaseRenewedOnlyAfterItRanOutStillFencesOnce(t *testing.T) {
	nodes := []Node{{Name: "a", Manager: true}, {Name: "b", Manager: true}, {Name: "w", Manager: true, Witness: true}, {Name: "n"}, {Name: "m"}}
	a, calls := agentWithCtl(t, Config{Self: "n", Nodes: nodes}) // started long ago: its lease ran out
	// It wakes from a freeze: its new heartbeats are acknowledged by a majority before its lease check runs.
	now := time.Now()
	a.mu.Lock()
	a.noteAckLocked("a", now, now)
	a.noteAckLocked("b", now, now)
	valid := now.Before(a.leaseExpiry())
	a.mu.Unlock()
	if !valid {
		t.Fatal("the acknowledgements renew the lease")
	}
	a.checkLease()
	if got := ctlCalls(calls); !strings.HasPrefix(got, "fence counter") {
		t.Errorf("the lapse before the renewal fences its copies; edge-ha-ctl got %q", got)
	}
	if !a.fenced {
		t.Error("it knows it fenced")
	}
	a.checkLease()
	if a.fenced {
		t.Error("the next check, with the lease renewed, holds the lease again")
	}
	// Acknowledgements within a lease that has not run out note no lapse.
	a.mu.Lock()
	later := time.Now()
	a.noteAckLocked("a", later, later)
	seen := a.lapseSeen
	a.mu.Unlock()
	if seen {
		t.Error("a renewal in time is no lapse")
	}
}

func TestACopyKilledAtALapseIsReportedFencedUntilItRunsHereAgainOr30s(t *testing.T) {
	nodes := []Node{{Name: "a", Manager: true}, {Name: "b", Manager: true}, {Name: "c", Manager: true}, {Name: "n"}, {Name: "m"}}
	a, _ := agentWithCtl(t, Config{Self: "n", Nodes: nodes})
	a.local = []Local{{Name: "counter", State: "running"}}
	a.checkLease()
	at, ok := a.selfFenced["counter"]
	if !ok {
		t.Fatal("the lapse killed the running copy: it is noted as fenced here")
	}
	absent := Local{Name: "counter", State: "absent"}
	if !a.fencedHereLocked(absent, at.Add(time.Second)) {
		t.Error("a second later, gone: reported fenced (the controllers restore it at once)")
	}
	if a.fencedHereLocked(absent, at.Add(31*time.Second)) {
		t.Error("31 s later: a report of long ago says nothing")
	}
	a.selfFenced["counter"] = at
	if a.fencedHereLocked(Local{Name: "counter", State: "running"}, at.Add(time.Second)) || a.fencedHereLocked(absent, at.Add(2*time.Second)) {
		t.Error("once it ran here again, no longer fenced")
	}
}
