package main

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestACopyIsUnhealthyOnlyAfterPassingThenFailingRetriesInARow(t *testing.T) {
	var h health
	if got := h.status(3); got != healthStarting {
		t.Errorf("no check yet: %s, want starting", got)
	}
	h.fails = 7 // failures before the first pass are not counted (watchHealth), but even so:
	if got := h.status(3); got != healthStarting {
		t.Errorf("never passed: %s, want starting (a wrong check must not get a service replaced again and again)", got)
	}
	h = health{passed: true}
	for fails, want := range []string{healthHealthy, healthFailing, healthFailing, healthUnhealthy, healthUnhealthy} {
		h.fails = fails
		if got := h.status(3); got != want {
			t.Errorf("passed, then %d failures with retries 3: %s, want %s", fails, got, want)
		}
	}
}

// selfAt: an agent whose own address is 127.0.0.1, where the tests' servers listen.
func selfAt(t *testing.T) *Agent {
	t.Helper()
	a, err := newState(Config{Self: "a", HeartbeatMs: 200, LeaseMs: 500, DownAfterMs: 800, Nodes: []Node{{Name: "a", Address: "127.0.0.1", Manager: true}}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(addr, "http://"))
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHTTPChecksPassOn2xxAnd3xxAndFailOnErrorsAndSilence(t *testing.T) {
	a := selfAt(t)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(204)
		case "/moved":
			w.WriteHeader(304)
		default:
			http.Error(w, "no", 503)
		}
	}))
	port := portOf(t, server.URL)
	check := func(path string) error {
		return a.probe(Service{Name: "s", Health: &HealthCheck{Kind: "http", Port: port, Path: path, TimeoutMs: 500}})
	}
	if err := check("/ok"); err != nil {
		t.Errorf("204: %v, want a pass", err)
	}
	if err := check("/moved"); err != nil {
		t.Errorf("304: %v, want a pass", err)
	}
	if err := check("/sick"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v, want a failure naming the status", err)
	}
	server.Close()
	if err := check("/ok"); err == nil {
		t.Error("nothing listens: a pass, want a failure")
	}
}

func TestTCPChecksPassWhenThePortAccepts(t *testing.T) {
	a := selfAt(t)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, listener.Addr().String())
	check := func() error {
		return a.probe(Service{Name: "s", Health: &HealthCheck{Kind: "tcp", Port: port, TimeoutMs: 500}})
	}
	if err := check(); err != nil {
		t.Errorf("listening: %v, want a pass", err)
	}
	listener.Close()
	if err := check(); err == nil {
		t.Error("closed: a pass, want a failure")
	}
}

func TestACopyIsReplacedOnlyWhenItRunsAndIsReportedUnhealthy(t *testing.T) {
	a := threeManagers(t, "a")
	a.cfg.Services = []Service{{Name: "kv", Nodes: []string{"a", "b"}, Health: &HealthCheck{Kind: "tcp", Retries: 3}}}
	a.reports["a"] = []Local{{Name: "kv", State: "running", Health: healthFailing}}
	a.reports["b"] = []Local{{Name: "kv", State: "absent"}}
	if a.unhealthy("a", "kv") {
		t.Error("failing (fewer than retries failures): not yet unhealthy")
	}
	a.reports["a"] = []Local{{Name: "kv", State: "running", Health: healthUnhealthy}}
	if !a.unhealthy("a", "kv") {
		t.Error("reported unhealthy: unhealthy")
	}
	a.reports["a"] = []Local{{Name: "kv", State: "exited", Health: healthUnhealthy}}
	if a.unhealthy("a", "kv") {
		t.Error("an exited copy is gone, not unhealthy (the gone rule handles it)")
	}
}

func TestACopyItsLagGuardPausedIsNotCheckedSoNotCountedFailing(t *testing.T) {
	a := selfAt(t)
	a.lagPauseMark = t.TempDir() + "/paused-"
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, listener.Addr().String())
	listener.Close() // a paused copy answers nothing
	check := func() error {
		return a.probe(Service{Name: "kv", Health: &HealthCheck{Kind: "tcp", Port: port, TimeoutMs: 200}})
	}
	if err := check(); err == nil || errors.Is(err, errSkipped) {
		t.Errorf("not paused, nothing listens: %v, want a failure", err)
	}
	if err := os.WriteFile(a.lagPauseMark+"kv", []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := check(); !errors.Is(err, errSkipped) {
		t.Errorf("paused by its lag guard: %v, want skipped (replaced from its standby's old checkpoint, it would lose what the pause keeps)", err)
	}
}
