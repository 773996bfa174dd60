// Orders from a controller to a node (takeover, sync, fence): HTTP, signed;
// carried out by edge-ha-ctl.

package main

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// orderTimeout: how long an order's answer is awaited. A takeover restores a
// checkpoint (seconds for hundreds of MB on a Pi); newest only lists files,
// and a takeover waits for every node's answer before it picks one; the
// others start a sync loop or remove a container, and a node that does not
// answer them in 10 s is as good as gone.
func orderTimeout(what string) time.Duration {
	switch what {
	case "takeover", "handover":
		return 60 * time.Second
	case "newest":
		return 3 * time.Second
	}
	return 10 * time.Second
}

func (a *Agent) post(node, what string, args map[string]any) (string, error) {
	signed := map[string]any{}
	for k, v := range args {
		signed[k] = v
	}
	a.mu.Lock()
	a.orderN++
	signed["from"], signed["run"], signed["n"] = a.cfg.Self, fmt.Sprintf("%x", a.runID), a.orderN
	a.mu.Unlock()
	body, _ := json.Marshal(signed)
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s:%d/v1/%s", a.byName[node].Address, a.cfg.Port, what), bytes.NewReader(body))
	req.Header.Set("X-Edge-Ha-Mac", a.sign(append([]byte(what+"\n"), body...)))
	client := http.Client{Timeout: orderTimeout(what)}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// mayStart: nil when this node may start something (a restored copy, a sync
// loop) at `now`: it holds its lease, and is not recovering from a stall.
// Checked here and not only by the lease loop: an order that queued while
// the agent was stopped is served the moment it runs again, before the
// lease loop has noticed anything (the nemesis saw a sync loop started that
// way, 12 s late, on a node whose copy had been restored elsewhere).
func (a *Agent) mayStart(now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.noteTickLocked(now)
	switch {
	case a.stalled(now):
		return fmt.Errorf("%s has just resumed after a stall: it starts nothing for %v", a.cfg.Self, a.downAfter)
	case a.fenced || !now.Before(a.leaseExpiry()):
		return fmt.Errorf("%s holds no lease: it may be cut off itself", a.cfg.Self)
	}
	return nil
}

func (a *Agent) serveOrders() {
	mux := http.NewServeMux()
	handle := func(what string, run func(args map[string]any) (string, error)) {
		mux.HandleFunc("/v1/"+what, func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
			if r.Method != "POST" || !hmac.Equal([]byte(r.Header.Get("X-Edge-Ha-Mac")), []byte(a.sign(append([]byte(what+"\n"), body...)))) {
				http.Error(w, "unsigned order", http.StatusForbidden)
				return
			}
			var args map[string]any
			var stamp orderStamp
			if err := json.Unmarshal(body, &args); err != nil || json.Unmarshal(body, &stamp) != nil {
				http.Error(w, "not an order", http.StatusBadRequest)
				return
			}
			if err := a.orderFresh(stamp); err != nil {
				a.event("refused", "", fmt.Sprintf("a %s order from %s (sent from %s) is refused: %v", what, stamp.From, r.RemoteAddr, err))
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			out, err := run(args)
			a.refreshLocal()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			io.WriteString(w, out)
		})
	}
	str := func(args map[string]any, k string) string { s, _ := args[k].(string); return s }
	ms := func(args map[string]any, k string) string {
		f, _ := args[k].(float64)
		return strconv.Itoa(int(f * 1000))
	}
	sync := func(args map[string]any) (string, error) {
		if str(args, "standby") == "" {
			return "", nil
		}
		return a.ctl("sync", str(args, "service"), str(args, "standby"), str(args, "standbyAddress"), ms(args, "interval"), ms(args, "maxLag"))
	}
	handle("takeover", func(args map[string]any) (string, error) {
		if err := a.mayStart(time.Now()); err != nil {
			return "", err
		}
		out, err := a.ctl("restore", str(args, "service"))
		if err != nil {
			return out, err
		}
		a.event("restored", str(args, "service"), "restored here: "+strings.TrimSpace(out))
		more, err := sync(args)
		return strings.TrimSpace(out + "\n" + more), err
	})
	handle("newest", func(args map[string]any) (string, error) {
		return a.ctl("newest", str(args, "service"))
	})
	handle("sync", func(args map[string]any) (string, error) {
		if err := a.mayStart(time.Now()); err != nil {
			return "", err
		}
		out, err := sync(args)
		if err == nil {
			a.event("sync", str(args, "service"), "syncing to "+str(args, "standby"))
		}
		return out, err
	})
	handle("handover", func(args map[string]any) (string, error) {
		out, err := a.ctl("handover", str(args, "service"), str(args, "targetAddress"))
		if err == nil {
			// Reported gone with the next heartbeat, not the next second's report: the
			// controller restores it elsewhere as soon as it hears so.
			a.refreshLocal()
		}
		return out, err
	})
	handle("fence", func(args map[string]any) (string, error) {
		a.fence(str(args, "service"), "ordered by the controller")
		return "", nil
	})
	server := &http.Server{Addr: fmt.Sprintf(":%d", a.cfg.Port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(server.ListenAndServe())
}

// An order's stamp, inside its signed body: who sent it, in which of its runs
// (random at its start, as in its heartbeats) and its number in that run.
type orderStamp struct {
	From string `json:"from"`
	Run  string `json:"run"`
	N    uint64 `json:"n"`
}

// orderWindow: how many of a sender's latest order numbers are remembered.
// Orders go out concurrently (a takeover asks every node at once), so one may
// overtake another: any number above the highest taken minus the window that
// was not taken yet is accepted, once.
const orderWindow = 256

// orderSeen: per sender, the run its orders were taken from, the highest
// number taken and those taken within the window below it.
type orderSeen struct {
	run  string
	high uint64
	took map[uint64]bool
}

// orderFresh: nil when the order with this stamp may be carried out now: its
// sender is a controller, the run is the one this node hears from it now (its
// heartbeats' acks and views: messages.go), and its number was not taken
// before. Signatures alone let anyone on the LAN replay a captured order (a
// fence, a takeover) later. No wall clock is involved: a Pi without a
// real-time clock boots in the past, and the nodes' clocks are not trusted to
// agree; the sender's run and count are its clock. A node that has just
// started refuses orders until it has heard the sender (a heartbeat).
func (a *Agent) orderFresh(o orderStamp) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	sender, ok := a.byName[o.From]
	current := func() string { // the sender's run as this node knows it ("" when it does not)
		if o.From == a.cfg.Self {
			return fmt.Sprintf("%x", a.runID) // a controller's order to its own node
		}
		if p := a.peers[o.From]; p != nil {
			return fmt.Sprintf("%x", p.run)
		}
		return ""
	}
	switch {
	case !ok || !sender.Manager:
		return fmt.Errorf("%q is not a controller of this cluster", o.From)
	case current() == "":
		return fmt.Errorf("%s has not been heard yet: its run is unknown", o.From)
	case current() != o.Run:
		return fmt.Errorf("run %s is not %s's current run: a replay, or %s restarted and has not been heard since", o.Run, o.From, o.From)
	}
	if a.ordersSeen == nil {
		a.ordersSeen = map[string]*orderSeen{}
	}
	seen := a.ordersSeen[o.From]
	if seen == nil || seen.run != o.Run {
		seen = &orderSeen{run: o.Run, took: map[uint64]bool{}}
		a.ordersSeen[o.From] = seen
	}
	if seen.took[o.N] || (seen.high > orderWindow && o.N <= seen.high-orderWindow) {
		return fmt.Errorf("order %d of %s's run %s was taken before: a replay", o.N, o.From, o.Run)
	}
	seen.took[o.N] = true
	if o.N > seen.high {
		seen.high = o.N
		for n := range seen.took {
			if seen.high > orderWindow && n <= seen.high-orderWindow {
				delete(seen.took, n)
			}
		}
	}
	return nil
}
