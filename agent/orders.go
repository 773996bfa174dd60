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
	case "takeover":
		return 60 * time.Second
	case "newest":
		return 3 * time.Second
	}
	return 10 * time.Second
}

func (a *Agent) post(node, what string, args map[string]any) (string, error) {
	body, _ := json.Marshal(args)
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
			if err := json.Unmarshal(body, &args); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
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
	intervalMs := func(args map[string]any) string {
		f, _ := args["interval"].(float64)
		return strconv.Itoa(int(f * 1000))
	}
	sync := func(args map[string]any) (string, error) {
		if str(args, "standby") == "" {
			return "", nil
		}
		return a.ctl("sync", str(args, "service"), str(args, "standby"), str(args, "standbyAddress"), intervalMs(args))
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
	handle("fence", func(args map[string]any) (string, error) {
		a.fence(str(args, "service"), "ordered by the controller")
		return "", nil
	})
	server := &http.Server{Addr: fmt.Sprintf(":%d", a.cfg.Port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(server.ListenAndServe())
}
