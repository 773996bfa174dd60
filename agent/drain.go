// Drained nodes (edge-ha node drain): a node says in its heartbeats that it
// is drained, and the controllers place nothing there: it is no standby and
// no failover target while another node can be one.

package main

import (
	"fmt"
	"os"
	"sort"
)

// selfDrained: whether this node's drain mark is there (a file edge-ha node
// drain writes and undrain removes: the mark is the only state).
func (a *Agent) selfDrained() bool {
	if a.cfg.Drained == "" {
		return false
	}
	_, err := os.Stat(a.cfg.Drained)
	return err == nil
}

// noteDrainedLocked records what `node`'s heartbeat said, and says a change once.
func (a *Agent) noteDrainedLocked(node string, drained bool) {
	if a.drained[node] == drained {
		return
	}
	a.drained[node] = drained
	if drained {
		a.eventLocked("drained", "", fmt.Sprintf("%s is drained: it is no standby and no failover target until edge-ha node undrain %s", node, node))
	} else {
		a.eventLocked("undrained", "", fmt.Sprintf("%s is back in placement", node))
	}
}

// drainedNodesLocked: the nodes this controller knows are drained, sorted
// (on a node that is no controller, itself when it is).
func (a *Agent) drainedNodesLocked() []string {
	nodes := []string{}
	if !a.isManager() {
		if a.selfDrained() {
			nodes = append(nodes, a.cfg.Self)
		}
		return nodes
	}
	for n, d := range a.drained {
		if d {
			nodes = append(nodes, n)
		}
	}
	sort.Strings(nodes)
	return nodes
}

// restoreCandidates: the nodes a takeover of `s` asks for their newest
// checkpoint: those up (other than `replaced`) and not drained; only when
// none of them is left, the drained ones (restoring there beats not at all).
func (a *Agent) restoreCandidates(s Service, alive func(string) bool, replaced string) []string {
	placed, drained := []string{}, []string{}
	for _, n := range s.Nodes {
		if !alive(n) || n == replaced {
			continue
		}
		if a.drained[n] {
			drained = append(drained, n)
		} else {
			placed = append(placed, n)
		}
	}
	if len(placed) > 0 {
		return placed
	}
	return drained
}
