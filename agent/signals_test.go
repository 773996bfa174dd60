package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestThrottledFlagsAsAPiFirmwareGivesThem(t *testing.T) {
	for text, want := range map[string]string{
		"0x0":               "",
		"0x50005":           "throttled critical under-voltage now",
		"throttled=0x50005": "throttled critical under-voltage now",
		"0x4\n":             "throttled warning throttled now",
		"0xa":               "throttled warning at the soft temperature limit, the ARM frequency capped now",
		"0x50000":           "throttled warning under-voltage or throttling has occurred since boot",
	} {
		got, err := throttledSignals(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		line := ""
		if len(got) == 1 {
			line = got[0].Name + " " + got[0].Level + " " + got[0].Message
		}
		if !strings.HasPrefix(line, want) || (want == "" && len(got) != 0) {
			t.Errorf("%q: got %q, want it to begin %q", text, line, want)
		}
	}
	if _, err := throttledSignals("volts"); err == nil || !strings.Contains(err.Error(), `expected a hex number such as 0x50005, found "volts"`) {
		t.Errorf("not a number: got %v", err)
	}
}

func TestMemoryPressureAndDiskLevels(t *testing.T) {
	calm := "some avg10=2.00 avg60=1.00 avg300=0.50 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
	if got := pressureSignals(calm); len(got) != 0 {
		t.Errorf("calm: got %v", got)
	}
	if got := pressureSignals(strings.Replace(calm, "some avg10=2.00", "some avg10=15.00", 1)); len(got) != 1 || got[0].Level != levelWarning {
		t.Errorf("some stalled: got %v", got)
	}
	if got := pressureSignals("some avg10=60.00\nfull avg10=35.50\n"); len(got) != 1 || got[0].Level != levelCritical || !strings.Contains(got[0].Message, "36 %") {
		t.Errorf("thrashing: got %v", got)
	}
	if got := diskSignals("/c", 30, 10); len(got) != 0 {
		t.Errorf("30 %% free: got %v", got)
	}
	if got := diskSignals("/c", 8, 10); len(got) != 1 || got[0].Level != levelWarning {
		t.Errorf("8 %% free: got %v", got)
	}
	if got := diskSignals("/c", 4, 10); len(got) != 1 || got[0].Level != levelCritical {
		t.Errorf("4 %% free: got %v", got)
	}
}

// signalsAgent: an agent whose throttled source is a file the test writes.
func signalsAgent(t *testing.T, policy string) (*Agent, string) {
	a := threeManagers(t, "a")
	dir := t.TempDir()
	a.cfg.Drained = filepath.Join(dir, "drained")
	a.cfg.Signals = &SignalsConfig{Policy: policy, ThrottledFile: filepath.Join(dir, "get_throttled")}
	return a, a.cfg.Signals.ThrottledFile
}

func write(t *testing.T, file, text string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReportPolicyOnlySaysWhatChanged(t *testing.T) {
	a, file := signalsAgent(t, "report")
	a.checkSignals()
	write(t, file, "0x50005")
	a.checkSignals()
	a.checkSignals()
	if a.selfDrained() {
		t.Error("report: never drains")
	}
	if !reflect.DeepEqual(namesOf(a.signals), []string{"throttled"}) {
		t.Errorf("signals: got %v", a.signals)
	}
	write(t, file, "0x0")
	a.checkSignals()
	if len(a.signals) != 0 {
		t.Errorf("cleared: got %v", a.signals)
	}
}

func TestDrainPolicyDrainsOncePerCriticalSignalAndAsksForEvacuation(t *testing.T) {
	a, file := signalsAgent(t, "drain")
	write(t, file, "0x4") // a warning: not drained
	a.checkSignals()
	if a.selfDrained() {
		t.Fatal("a warning does not drain")
	}
	write(t, file, "0x50005")
	a.checkSignals()
	if !a.selfDrained() || !a.evacuating() {
		t.Fatal("under-voltage now: drained, asking for evacuation")
	}
	// The operator undrains it; the same signal does not drain it again.
	os.Remove(a.cfg.Drained)
	a.checkSignals()
	if a.selfDrained() {
		t.Error("undrained by the operator: the same signal does not drain it again")
	}
	// The signal goes, then comes back: a new episode drains it again.
	write(t, file, "0x0")
	a.checkSignals()
	write(t, file, "0x1")
	a.checkSignals()
	if !a.selfDrained() {
		t.Error("under-voltage again: drained again")
	}
	// An operator's drain (edge-ha node drain touches the mark) asks for no evacuation: it moves the services itself.
	write(t, a.cfg.Drained, "")
	if a.evacuating() {
		t.Error("an operator's mark: no evacuation by the controllers")
	}
}

func TestAHandoverGoesToTheStandbyWhenItMayElseTheNextNode(t *testing.T) {
	a := threeManagers(t, "a")
	s := Service{Name: "counter", Nodes: []string{"a", "b", "c"}}
	up := map[string]bool{"a": true, "b": true, "c": true}
	alive := func(n string) bool { return up[n] }
	a.reports["a"] = []Local{{Name: "counter", State: "running", Standby: "c"}}
	if got := a.handoverTarget(s, "a", alive); got != "c" {
		t.Errorf("standby c up: got %q, want c", got)
	}
	up["c"] = false
	if got := a.handoverTarget(s, "a", alive); got != "b" {
		t.Errorf("standby c down: got %q, want b", got)
	}
	a.noteDrainedLocked("b", true)
	if got := a.handoverTarget(s, "a", alive); got != "" {
		t.Errorf("c down, b drained: got %q, want none", got)
	}
}

func namesOf(signals []Signal) []string {
	names := []string{}
	for _, s := range signals {
		names = append(names, s.Name)
	}
	return names
}

func TestAServiceHandedOverIsNotHandedOverAgainOnAReportSentBeforeItsEnd(t *testing.T) {
	a := threeManagers(t, "a")
	if a.handedOverRecently("counter", t0) {
		t.Error("never handed over: a handover is due")
	}
	a.handedOver["counter"] = t0
	if !a.handedOverRecently("counter", t0.Add(ms(600))) {
		t.Error("handed over 0.6 s ago: its old node's report still saying running is older than that, no second handover")
	}
	if a.handedOverRecently("counter", t0.Add(31*time.Second)) {
		t.Error("31 s later a copy still reported there is handed over again")
	}
}
