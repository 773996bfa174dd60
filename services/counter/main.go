// counter is the stateful demo service: its whole state is one number held in
// memory, so that a migration that loses or repeats state shows at once.
//
//	GET  /       {"count":N,"host":"node2","started":"..."}
//	POST /incr   adds one and returns the new value
//	GET  /watch  a stream that never ends: the value as a server-sent event
//	             every 100 ms, on one long-lived connection (what a live
//	             migration must carry over, CRIU's tcp-established)
//
// Other answers close their connection: idle keep-alive connections would be
// in every checkpoint for nothing.
package main

import (
	"encoding/json"
	"fmt"
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
	http.HandleFunc("/watch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		flusher, _ := w.(http.Flusher)
		for seq := 1; ; seq++ {
			mu.Lock()
			n := count
			mu.Unlock()
			if _, err := fmt.Fprintf(w, "data: {\"seq\":%d,\"count\":%d}\n\n", seq, n); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	addr := ":8080"
	if a := os.Getenv("LISTEN"); a != "" {
		addr = a
	}
	log.Fatal(http.ListenAndServe(addr, nil))
}
