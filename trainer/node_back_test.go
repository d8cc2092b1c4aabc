package trainer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/infergate/infergate/trafficlog"
)

// A node whose traffic log could not be read is said to be read again
// when it is: the trainer said only that it could not read it ("no stage
// passes until it is back"), so its log never told that the stages had
// every node's evidence again.
func TestNodeLogsSayWhenANodeIsBack(t *testing.T) {
	a := feedbackRecord("a")
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"shutting down"}`)
			return
		}
		w.Header().Set("X-Traffic-First", "0")
		w.Header().Set("X-Traffic-End", fmt.Sprint(len(a)))
		w.Header().Set("X-Traffic-Next", fmt.Sprint(len(a)))
		if r.URL.Query().Get("from") == "" || r.URL.Query().Get("from") == "0" {
			w.Write(a)
		}
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Traffic-First", "0")
		w.Header().Set("X-Traffic-End", "0")
		w.Header().Set("X-Traffic-Next", "0")
	}))
	defer other.Close()
	var logs []string
	nl := (&Gateway{Nodes: []string{srv.URL, other.URL}}).Logs(func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) })
	read := func() {
		t.Helper()
		if err := nl.Read(t.Context(), func(*trafficlog.Event) {}); err != nil {
			t.Fatal(err)
		}
	}
	down.Store(true)
	read()
	read()
	if len(nl.Missing()) != 1 {
		t.Fatalf("missing %v; want the node that is down", nl.Missing())
	}
	down.Store(false)
	read()
	if len(nl.Missing()) != 0 {
		t.Fatalf("missing %v once the node answers; want none", nl.Missing())
	}
	back := 0
	for _, l := range logs {
		if strings.Contains(l, srv.URL) && strings.Contains(l, "reads again") {
			back++
		}
	}
	if back != 1 {
		t.Fatalf("%d lines saying %s reads again; want 1; the log:\n%s", back, srv.URL, strings.Join(logs, "\n"))
	}
	n := len(logs)
	read()
	if len(logs) != n {
		t.Fatalf("the next read logged %q; want nothing", logs[n:])
	}
}
