package trainer

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// frontNode fronts a loopWorld's fakeGateway: it can make one named call
// ("METHOD /path" with /v1/models/ctr trimmed) take effect but answer 503
// (a response lost to a timeout, or a crash before the state is saved),
// turn its traffic log off (404, as a node started without
// --traffic-percent answers), and answer a position past its log's end
// as a real node does (400) instead of panicking in the fake.
type frontNode struct {
	f          *fakeGateway
	mu         sync.Mutex
	lose       string
	trafficOff bool
	// guardRetire refuses to retire production (409), as the cluster does.
	guardRetire bool
}

func (n *frontNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/v1/models/ctr")
	n.mu.Lock()
	lose := n.lose != "" && n.lose == name
	if lose {
		n.lose = ""
	}
	off, guard := n.trafficOff, n.guardRetire
	n.mu.Unlock()
	if guard && r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/v1/models/ctr/versions/") {
		n.f.mu.Lock()
		prod := n.f.production
		n.f.writes = append(n.f.writes, name+" (conflict)")
		n.f.mu.Unlock()
		if v, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/v1/models/ctr/versions/"), 10, 64); v == prod {
			http.Error(w, `{"error":"conflict: cannot retire version `+strconv.FormatInt(v, 10)+` of model \"ctr\": aliases [\"production\"] point to it; point them at another version first"}`, 409)
			return
		}
		n.f.mu.Lock()
		n.f.writes = n.f.writes[:len(n.f.writes)-1]
		n.f.mu.Unlock()
	}
	if r.URL.Path == "/v1/traffic" {
		if off {
			http.Error(w, `{"error":"this server keeps no traffic log; start it with --traffic-percent above 0"}`, 404)
			return
		}
		n.f.mu.Lock()
		end := len(n.f.log)
		n.f.mu.Unlock()
		if s := r.URL.Query().Get("from"); s != "" {
			if from, _ := strconv.Atoi(s); from > end {
				w.Header().Set("X-Traffic-First", "0")
				w.Header().Set("X-Traffic-End", strconv.Itoa(end))
				http.Error(w, `{"error":"traffic log position `+s+` is beyond the log's end, `+strconv.Itoa(end)+`"}`, 400)
				return
			}
		}
	}
	if lose {
		n.f.ServeHTTP(httptest.NewRecorder(), r) // applied...
		http.Error(w, `{"error":"context deadline exceeded"}`, 503)
		return // ...but the answer is lost
	}
	n.f.ServeHTTP(w, r)
}

func (n *frontNode) loseNext(call string) {
	n.mu.Lock()
	n.lose = call
	n.mu.Unlock()
}

func (n *frontNode) setTrafficOff(off bool) {
	n.mu.Lock()
	n.trafficOff = off
	n.mu.Unlock()
}

// frontWith puts a frontNode in front of w's fake as its only node, or
// adds it as a second node when second is true. Call before w.loop().
func (w *loopWorld) frontWith(second bool) *frontNode {
	n := &frontNode{f: w.f}
	srv := httptest.NewServer(n)
	w.t.Cleanup(srv.Close)
	if second {
		w.cfg.Gateway.Nodes = append(w.cfg.Gateway.Nodes, srv.URL)
	} else {
		w.cfg.Gateway.Nodes = []string{srv.URL}
	}
	return n
}

// lastDecision returns the last decision in the loop's state.
func lastDecision(l *Loop) Decision {
	h := l.State().History
	if len(h) == 0 {
		return Decision{}
	}
	return h[len(h)-1]
}
