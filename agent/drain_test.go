package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestADrainedNodeIsNeverTheNextStandby(t *testing.T) {
	a := threeManagers(t, "a")
	s := Service{Name: "counter", Nodes: []string{"a", "b", "c"}}
	up := func(string) bool { return true }
	a.noteDrainedLocked("b", true)
	if got := a.nextStandby(s, "a", up); got != "c" {
		t.Errorf("b drained: got %q, want c", got)
	}
	a.noteDrainedLocked("c", true)
	if got := a.nextStandby(s, "a", up); got != "" {
		t.Errorf("b and c drained: got %q, want none", got)
	}
	a.noteDrainedLocked("b", false)
	if got := a.nextStandby(s, "a", up); got != "b" {
		t.Errorf("b undrained: got %q, want b", got)
	}
}

func TestATakeoverAsksDrainedNodesOnlyWhenNoOtherIsLeft(t *testing.T) {
	a := threeManagers(t, "a")
	s := Service{Name: "counter", Nodes: []string{"a", "b", "c"}}
	up := map[string]bool{"a": false, "b": true, "c": true}
	alive := func(n string) bool { return up[n] }
	a.noteDrainedLocked("b", true)
	if got := a.restoreCandidates(s, alive, ""); !reflect.DeepEqual(got, []string{"c"}) {
		t.Errorf("b drained, c up: got %v, want [c]", got)
	}
	up["c"] = false
	if got := a.restoreCandidates(s, alive, ""); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("only drained b up: got %v, want [b] (restoring there beats not at all)", got)
	}
}

func TestDrainChangesAreSaidOnceAndTheMarkIsAFile(t *testing.T) {
	a := threeManagers(t, "a")
	a.noteDrainedLocked("b", true)
	a.noteDrainedLocked("b", true)
	if got := a.drainedNodesLocked(); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("drained: got %v, want [b]", got)
	}
	a.noteDrainedLocked("b", false)
	if got := a.drainedNodesLocked(); len(got) != 0 {
		t.Errorf("undrained: got %v, want none", got)
	}
	if a.selfDrained() {
		t.Error("no mark configured: not drained")
	}
	a.cfg.Drained = filepath.Join(t.TempDir(), "drained")
	if a.selfDrained() {
		t.Error("no mark file: not drained")
	}
	if err := os.WriteFile(a.cfg.Drained, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !a.selfDrained() {
		t.Error("mark file there: drained")
	}
}
