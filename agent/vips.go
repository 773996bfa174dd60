package main

import (
	"strings"
	"time"
)

// Virtual addresses (host/vip.sh): a service's address is held by the node
// that runs it. The moves themselves are the host scripts' (a restore takes
// it after its start, a fence or a migration's dump drops it first); this
// loop only keeps every address on this node in line with its container,
// for whatever else starts or stops one (pulumi up, a copy started by hand,
// a restore whose address could not be taken at once). Only while the node
// holds its lease and is not recovering from a stall: without a lease its
// copies are fenced, addresses first (noQuorum stop), or keep running with
// theirs (freeze), and a stalled agent's view of its own node is old.

// keepVips runs edge-ha-ctl vips and says what it changed (an error once, until it changes).
func (a *Agent) keepVips() {
	if a.isWitness() || a.mayStart(time.Now()) != nil {
		return
	}
	out, err := a.ctl("vips")
	said := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(out), "\n", "; ")), " ")
	if err != nil {
		if msg := said + errText(err); msg != a.vipError {
			a.vipError = msg
			a.event("error", "", "keeping the virtual addresses: "+msg)
		}
		return
	}
	a.vipError = ""
	if said != "" {
		a.event("vip", "", said)
	}
}
