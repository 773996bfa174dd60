package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// killCopies sends SIGKILL to the first process of each running copy in
// `local` (the last report: its container's pid and id), and returns the
// services it did so for. Killing a container's first process ends its PID
// namespace, so all of the copy's processes go with it, in the kernel, in
// microseconds; the fence through Docker that follows removes the container.
// The pid is the last report's (at most a second old): it is killed only if
// it still belongs to that container (its cgroup names the id), never a
// process that took the number since.
func killCopies(local []Local) []string {
	killed := []string{}
	for _, l := range local {
		if l.State != "running" || l.Pid <= 0 || len(l.ID) < 12 || !belongs(l.Pid, l.ID) {
			continue
		}
		if syscall.Kill(l.Pid, syscall.SIGKILL) == nil {
			killed = append(killed, l.Name)
		}
	}
	return killed
}

// belongs: inContainer (a variable for the tests, whose processes are in no container).
var belongs = inContainer

// inContainer: whether process `pid` is in the cgroup of container `id` (Docker names its cgroups after the id).
func inContainer(pid int, id string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	return err == nil && strings.Contains(string(data), id)
}
