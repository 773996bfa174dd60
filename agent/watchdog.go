package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The watchdog: a second process (the same binary, installed under another
// name and started with -watchdog) that fences this node's copies when the
// agent's lease has run out and the agent has not fenced them. The agent
// fences by itself when its lease lapses; but an agent that does not run
// (stopped, hung, starved) cannot, and its copies would go on serving while
// the controllers restore them elsewhere: the nemesis saw two copies of the
// counter for 2.5 s and 6 s after pausing only the agent. The watchdog is the
// software form of what Pacemaker's SBD does with a hardware watchdog; a Pi
// has one (bcm2835_wdt) that a later version could arm the same way.
//
// The agent writes its lease to leaseFile at every lease check (a quarter
// heartbeat): "DEADLINE FENCED", DEADLINE the end of its lease in ms of the
// kernel's boot-time clock (/proc/uptime, which both processes read), FENCED
// 1 once it has fenced after a lapse; "freeze" when the site chose noQuorum
// freeze (copies are kept by design). Then a line "copy NAME PID ID" per copy
// running here as its last report saw it: what the watchdog kills at once.
// The fences through Docker take seconds each on a busy engine; the nemesis
// saw the watchdog fence one service for 11 s while a second one, not yet
// fenced, served beside the copy the controllers had restored elsewhere.
const leaseFile = "/run/edge-ha-agent.lease"

// watchdogGrace: how long past the deadline the watchdog leaves the agent to
// fence by itself. Well inside downAfter - lease (300 ms by default): the
// controllers restore elsewhere only after downAfter.
const watchdogGrace = 150 * time.Millisecond

// uptimeMs: the kernel's boot-time clock in ms (it runs on while a process is stopped).
func uptimeMs() (int64, error) {
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/uptime is empty")
	}
	s, err := strconv.ParseFloat(f[0], 64)
	return int64(s * 1000), err
}

// writeLeaseLocked writes the lease file for the watchdog (a.mu held).
func (a *Agent) writeLeaseLocked(now time.Time, expiry time.Time) {
	if a.leaseFile == "" {
		return
	}
	content := "freeze\n"
	if a.noQuorum() != "freeze" {
		up, err := uptimeMs()
		if err != nil {
			return
		}
		fenced := 0
		if a.fenced {
			fenced = 1
		}
		content = fmt.Sprintf("%d %d\n", up+expiry.Sub(now).Milliseconds(), fenced)
		for _, l := range a.local {
			if l.State == "running" && l.Pid > 0 && l.ID != "" {
				content += fmt.Sprintf("copy %s %d %s\n", l.Name, l.Pid, l.ID)
			}
		}
	}
	tmp := a.leaseFile + ".tmp"
	if os.WriteFile(tmp, []byte(content), 0o644) == nil {
		os.Rename(tmp, a.leaseFile)
	}
}

// leaseVerdict: what the watchdog does with the lease file's content at
// uptime `up` (ms): fence (the lease ran out longer than the grace ago and
// the agent has not fenced), and the deadline it read.
func leaseVerdict(content string, up int64) (fence bool, deadline int64) {
	f := strings.Fields(strings.SplitN(content, "\n", 2)[0])
	if len(f) != 2 {
		return false, 0 // "freeze", or nothing written yet
	}
	deadline, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || f[1] == "1" {
		return false, deadline
	}
	return up > deadline+watchdogGrace.Milliseconds(), deadline
}

// runWatchdog: the watchdog's loop (every 50 ms). It fences once per lapse,
// and reads only a lease file written since it started (a file left by an
// earlier run says nothing about this one).
func (a *Agent) runWatchdog() {
	started := time.Now()
	a.event("watchdog", "", fmt.Sprintf("watchdog started: fences this node's copies when the agent's lease has run out for %v and the agent has not", watchdogGrace))
	var fencedFor int64 = -1
	for {
		time.Sleep(50 * time.Millisecond)
		st, err := os.Stat(leaseFile)
		if err != nil || st.ModTime().Before(started) {
			continue
		}
		data, err := os.ReadFile(leaseFile)
		up, uerr := uptimeMs()
		if err != nil || uerr != nil {
			continue
		}
		fence, deadline := leaseVerdict(string(data), up)
		if !fence || deadline == fencedFor {
			continue
		}
		fencedFor = deadline
		why := fmt.Sprintf("the agent's lease ran out %d ms ago and the agent did not fence (it does not run?): the watchdog did", up-deadline)
		for _, s := range killCopies(leaseCopies(string(data))) {
			a.event("fence", s, why+": killed its processes at once (SIGKILL); its container goes next")
		}
		a.fenceAll(why)
	}
}

// leaseCopies: the copies a lease file lists ("copy NAME PID ID" lines).
func leaseCopies(content string) []Local {
	copies := []Local{}
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "copy" {
			continue
		}
		if pid, err := strconv.Atoi(f[2]); err == nil {
			copies = append(copies, Local{Name: f[1], State: "running", Pid: pid, ID: f[3]})
		}
	}
	return copies
}
