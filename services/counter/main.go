// counter is the stateful demo service: its whole state is one number held in
// memory, so that a migration that loses or repeats state shows at once.
//
//	GET  /       {"count":N,"host":"node2","started":"..."}
//	POST /incr   adds one and returns the new value
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	var (
		mu    sync.Mutex
		count int64
	)
	started := time.Now().UTC().Format(time.RFC3339Nano)
	reply := func(w http.ResponseWriter, n int64) {
		host, _ := os.Hostname()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "close")
		json.NewEncoder(w).Encode(map[string]any{"count": n, "host": host, "started": started})
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := count
		mu.Unlock()
		reply(w, n)
	})
	http.HandleFunc("/incr", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST /incr", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		reply(w, n)
	})
	addr := ":8080"
	if a := os.Getenv("LISTEN"); a != "" {
		addr = a
	}
	log.Fatal(http.ListenAndServe(addr, nil))
}
