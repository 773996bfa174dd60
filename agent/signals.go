// Early warnings: the signs a node gives before it fails, read where the
// host has them, published as events and in the state, and with the policy
// "drain", acted on before the node dies.
//
//   - throttled: a Raspberry Pi's firmware flags (get_throttled): under-voltage
//     now is critical (a sagging supply corrupts SD cards and resets boards),
//     throttling, a frequency cap or the soft temperature limit now are
//     warnings, any of them since boot a warning.
//   - memory: the kernel's pressure stall information: tasks all stalled on
//     memory ("full") for more than 20 % of the last 10 s is critical, some
//     stalled more than 10 % a warning.
//   - disk: free space where checkpoints are kept: under the minimum a
//     warning, under half of it critical (a checkpoint that cannot be
//     written is state that cannot be saved).
//   - file system: errors ext4 counted since mount (errors_count): critical.
//
// Each source is a file whose path the configuration gives (the lab points
// them at files a test writes: a lab node has no firmware to under-volt).
//
// With the policy "drain", the first critical signal makes the node drain
// itself: it writes the drain mark (drain.go; "early warning: ..." in it),
// its heartbeats say it is drained and asks to be evacuated, and the acting
// controller hands its services over one at a time (controller.go
// evacuate): the node checkpoints and stops each, sends the checkpoint to
// the next node, which restores it with its state. An operator's undrain
// lifts it; the same signal does not drain it again, a new one does.

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SignalsConfig: where the agent reads its node's health signals, and what
// it does with a critical one ("report": events; "drain": see above).
type SignalsConfig struct {
	Policy             string  `json:"policy"`
	ThrottledFile      string  `json:"throttledFile,omitempty"`
	PressureFile       string  `json:"pressureFile,omitempty"`
	DiskPath           string  `json:"diskPath,omitempty"`
	DiskMinFreePercent float64 `json:"diskMinFreePercent,omitempty"`
	// FsErrorsGlob: files each holding a count of file-system errors (/sys/fs/ext4/*/errors_count).
	FsErrorsGlob string `json:"fsErrorsGlob,omitempty"`
}

// Signal is one sign of trouble: its source, "warning" or "critical", and what it means.
type Signal struct {
	Name    string `json:"name"`
	Level   string `json:"level"`
	Message string `json:"message"`
}

const (
	levelWarning  = "warning"
	levelCritical = "critical"
	// earlyWarningMark: how the drain mark starts when a signal wrote it (not an operator).
	earlyWarningMark = "early warning: "
)

// throttledSignals reads the firmware's get_throttled value ("0x50005", or
// "throttled=0x50005" as vcgencmd prints it).
func throttledSignals(text string) ([]Signal, error) {
	text = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text), "throttled="))
	v, err := strconv.ParseUint(strings.TrimPrefix(text, "0x"), 16, 32)
	if err != nil {
		return nil, fmt.Errorf("get_throttled: expected a hex number such as 0x50005, found %q", text)
	}
	now := []string{}
	for bit, what := range map[uint64]string{0x2: "the ARM frequency capped", 0x4: "throttled", 0x8: "at the soft temperature limit"} {
		if v&bit != 0 {
			now = append(now, what)
		}
	}
	sort.Strings(now)
	out := []Signal{}
	switch {
	case v&0x1 != 0:
		out = append(out, Signal{"throttled", levelCritical, fmt.Sprintf("under-voltage now (get_throttled %#x): the supply sags, which corrupts SD cards and resets boards", v)})
	case len(now) > 0:
		out = append(out, Signal{"throttled", levelWarning, fmt.Sprintf("%s now (get_throttled %#x)", strings.Join(now, ", "), v)})
	case v&0xf0000 != 0:
		out = append(out, Signal{"throttled", levelWarning, fmt.Sprintf("under-voltage or throttling has occurred since boot (get_throttled %#x)", v)})
	}
	return out, nil
}

// pressureSignals reads /proc/pressure/memory ("some avg10=1.00 ..." and "full avg10=0.50 ...").
func pressureSignals(text string) []Signal {
	avg10 := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(fields[1], "avg10=") {
			continue
		}
		avg10[fields[0]], _ = strconv.ParseFloat(strings.TrimPrefix(fields[1], "avg10="), 64)
	}
	switch {
	case avg10["full"] > 20:
		return []Signal{{"memory", levelCritical, fmt.Sprintf("every task stalled on memory %.0f %% of the last 10 s: the node is thrashing", avg10["full"])}}
	case avg10["some"] > 10:
		return []Signal{{"memory", levelWarning, fmt.Sprintf("tasks stalled on memory %.0f %% of the last 10 s", avg10["some"])}}
	}
	return nil
}

// diskSignals: free space where checkpoints are kept, against the minimum.
func diskSignals(path string, freePercent, minFree float64) []Signal {
	switch {
	case freePercent < minFree/2:
		return []Signal{{"disk", levelCritical, fmt.Sprintf("%.1f %% free at %s: checkpoints may no longer be written", freePercent, path)}}
	case freePercent < minFree:
		return []Signal{{"disk", levelWarning, fmt.Sprintf("%.1f %% free at %s (under %.0f %%)", freePercent, path, minFree)}}
	}
	return nil
}

// readSignals reads every configured source; a source the host does not have is no signal.
func readSignals(c SignalsConfig) []Signal {
	out := []Signal{}
	if b, err := os.ReadFile(c.ThrottledFile); c.ThrottledFile != "" && err == nil {
		if s, err := throttledSignals(string(b)); err == nil {
			out = append(out, s...)
		} else {
			out = append(out, Signal{"throttled", levelWarning, err.Error()})
		}
	}
	if b, err := os.ReadFile(c.PressureFile); c.PressureFile != "" && err == nil {
		out = append(out, pressureSignals(string(b))...)
	}
	var fs syscall.Statfs_t
	if c.DiskPath != "" && syscall.Statfs(c.DiskPath, &fs) == nil && fs.Blocks > 0 {
		out = append(out, diskSignals(c.DiskPath, 100*float64(fs.Bavail)/float64(fs.Blocks), c.DiskMinFreePercent)...)
	}
	if c.FsErrorsGlob != "" {
		files, _ := filepath.Glob(c.FsErrorsGlob)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
				out = append(out, Signal{"filesystem", levelCritical, fmt.Sprintf("%d file-system errors on %s since mount", n, filepath.Base(filepath.Dir(f)))})
			}
		}
	}
	return out
}

// checkSignals reads the node's signals, says each change once, and with
// the policy "drain" drains this node on a critical signal it has not
// drained it for yet.
func (a *Agent) checkSignals() {
	c := a.cfg.Signals
	if c == nil || c.Policy == "" {
		return
	}
	found := readSignals(*c)
	a.mu.Lock()
	defer a.mu.Unlock()
	was := map[string]Signal{}
	for _, s := range a.signals {
		was[s.Name] = s
	}
	now := map[string]bool{}
	for _, s := range found {
		now[s.Name] = true
		if old, ok := was[s.Name]; !ok || old.Level != s.Level {
			a.eventLocked("health", "", fmt.Sprintf("%s %s: %s", s.Name, s.Level, s.Message))
		}
	}
	for name := range was {
		if !now[name] {
			a.eventLocked("health", "", fmt.Sprintf("%s: no longer a sign of trouble", name))
		}
	}
	a.signals = found
	if c.Policy != "drain" || a.isWitness() {
		return
	}
	for _, s := range found {
		key := s.Name + " " + s.Level
		if s.Level != levelCritical || a.drainedFor[key] {
			continue
		}
		a.drainedFor[key] = true
		if err := os.WriteFile(a.cfg.Drained, []byte(earlyWarningMark+s.Name+": "+s.Message+"\n"), 0o644); err != nil {
			a.eventLocked("error", "", fmt.Sprintf("could not drain this node for %s: %v", s.Name, err))
			return
		}
		a.eventLocked("drain", "", fmt.Sprintf("%s is critical (%s): this node drains itself; the controllers hand its services over to other nodes ('edge-ha node undrain %s' when it is fixed)", s.Name, s.Message, a.cfg.Self))
		return
	}
	// A signal gone: it may drain the node again when it comes back.
	for key := range a.drainedFor {
		if !now[strings.Fields(key)[0]] {
			delete(a.drainedFor, key)
		}
	}
}

// evacuating: whether this node drained itself for an early warning (its
// mark says so), asking the controllers to move its services off.
func (a *Agent) evacuating() bool {
	if a.cfg.Drained == "" {
		return false
	}
	b, err := os.ReadFile(a.cfg.Drained)
	return err == nil && strings.HasPrefix(string(b), earlyWarningMark)
}

// handOver orders `owner`, which drained itself for an early warning, to
// checkpoint and stop `s` and send the checkpoint to the next node: its
// standby when that is up and not drained, else the next of its placement.
// Once the owner reports the copy gone, control restores it there at once
// (handedOver), from that checkpoint: the newest anywhere.
func (a *Agent) handOver(s Service, owner string, alive func(string) bool) {
	target := a.handoverTarget(s, owner, alive)
	if target == "" {
		if !a.stuck["handover:"+s.Name] {
			a.stuck["handover:"+s.Name] = true
			a.eventLocked("stuck", s.Name, fmt.Sprintf("%s asks for it to be handed over, but no other node may run it now: it runs on there", owner))
		}
		return
	}
	delete(a.stuck, "handover:"+s.Name)
	a.eventLocked("handover", s.Name, fmt.Sprintf("%s drained itself for an early warning: handover to %s on %s", owner, target, owner))
	a.busyUntil[s.Name] = time.Now().Add(60 * time.Second)
	a.busyOn[s.Name] = owner
	go func() {
		out, err := a.post(owner, "handover", map[string]any{"service": s.Name, "targetAddress": a.byName[target].Address})
		a.mu.Lock()
		defer a.mu.Unlock()
		a.busyUntil[s.Name] = time.Time{}
		if err != nil {
			// It runs on there (edge-ha-ctl handover resumes it): tried again a while later.
			a.busyUntil[s.Name] = time.Now().Add(10 * time.Second)
			a.eventLocked("error", s.Name, fmt.Sprintf("handover on %s failed: %v", owner, err))
			return
		}
		a.handedOver[s.Name] = time.Now()
		a.eventLocked("handed-over", s.Name, strings.TrimSpace(out))
	}()
}

// handedOverRecently: whether a handover of `service` ended less than 30 s
// before `now`. Its old node's reports lag its end by up to a heartbeat: one
// sent before the copy went still says it runs there. Taken as true, that
// report once ordered a second handover, which found no container there,
// failed, and held the service 10 s (a lab client's request timed out, 14 s
// without an answer). Within the 30 s the copy gone is the handover's, and
// restored at once; after them, a copy still reported there is handed over again.
func (a *Agent) handedOverRecently(service string, now time.Time) bool {
	handed, ok := a.handedOver[service]
	return ok && now.Sub(handed) < 30*time.Second
}

// handoverTarget: where `owner` hands `s` over to: its standby when that is
// up and not drained (it has the newest synced state already), else the
// next node of its placement that is; "" when none is.
func (a *Agent) handoverTarget(s Service, owner string, alive func(string) bool) string {
	have, _ := a.reportOf(owner, s.Name)
	if t := have.Standby; t != "" && t != owner && alive(t) && !a.drained[t] {
		return t
	}
	return a.nextStandby(s, owner, alive)
}
