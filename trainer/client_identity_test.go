package trainer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/infergate/infergate/trafficlog"
)

// A node's traffic log made anew (its data directory wiped, or the node
// replaced) that grew past the trainer's position before the next read:
// the position lands on a record of the new log, so the trainer would go
// on from there and never read the records before it. The log's identity
// (X-Traffic-Log) tells it the log started over: it reads the new log
// from its oldest record.
func TestNodeLogsNoticeALogMadeAnew(t *testing.T) {
	var mu sync.Mutex
	logID, records := "aaaaaaaaaaaaaaaa", [][]byte{feedbackRecord("a0"), feedbackRecord("a1")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("X-Traffic-Log", logID)
		from, _ := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
		var body []byte
		pos := int64(0)
		for _, rec := range records {
			if pos >= from {
				body = append(body, rec...)
			}
			pos += int64(len(rec))
		}
		end := strconv.FormatInt(pos, 10)
		w.Header().Set("X-Traffic-First", "0")
		w.Header().Set("X-Traffic-Next", end)
		w.Header().Set("X-Traffic-End", end)
		w.Write(body)
	}))
	defer srv.Close()
	var logs []string
	nl := (&Gateway{Nodes: []string{srv.URL}}).Logs(func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) })
	read := func() string {
		t.Helper()
		var got []string
		if err := nl.Read(t.Context(), func(e *trafficlog.Event) { got = append(got, e.ID) }); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, ",")
	}
	if got := read(); got != "a0,a1" {
		t.Fatalf("first read: %s; want a0,a1", got)
	}
	// The node's log is made anew and grows past the trainer's position,
	// which now falls on b2, a record's.
	mu.Lock()
	logID, records = "bbbbbbbbbbbbbbbb", [][]byte{feedbackRecord("b0"), feedbackRecord("b1"), feedbackRecord("b2")}
	mu.Unlock()
	if got := read(); got != "b0,b1,b2" {
		t.Fatalf("after the log was made anew: %s; want b0,b1,b2, from its oldest record", got)
	}
	if want := "started over (it is log bbbbbbbbbbbbbbbb, no longer aaaaaaaaaaaaaaaa"; !strings.Contains(strings.Join(logs, "\n"), want) {
		t.Errorf("logs:\n%s\nwant a line saying %q", strings.Join(logs, "\n"), want)
	}
	if got := read(); got != "" {
		t.Fatalf("a read with nothing new: %s; want nothing", got)
	}
}
