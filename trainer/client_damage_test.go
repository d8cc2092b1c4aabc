package trainer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/trafficlog"
)

// A node's traffic log damaged at a record: the trainer skips to the
// next segment where the node names one, saying what it loses, and where
// it names none waits at the damage; it never reads the log again from
// its oldest record, which would feed it the same events twice (as it
// took the 400 for a log that started over).
func TestNodeLogsSkipDamage(t *testing.T) {
	a, b := feedbackRecord("a"), feedbackRecord("b")
	damaged := int64(len(a))    // the second record, damaged
	skip := damaged + 1000      // the next segment
	end := skip + int64(len(b)) // after its one record
	var mu sync.Mutex
	segmentNext := false // whether the node has a next segment yet
	reads := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		from := r.URL.Query().Get("from")
		reads[from]++
		w.Header().Set("X-Traffic-First", "0")
		switch from {
		case "", "0":
			w.Header().Set("X-Traffic-Next", strconv.FormatInt(damaged, 10))
			w.Header().Set("X-Traffic-End", strconv.FormatInt(end, 10))
			w.Write(a)
		case strconv.FormatInt(damaged, 10):
			w.Header().Set("X-Traffic-Damaged", from)
			if segmentNext {
				w.Header().Set("X-Traffic-Skip", strconv.FormatInt(skip, 10))
			}
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":"damaged traffic log record at position %d (checksum mismatch)"}`, damaged)
		case strconv.FormatInt(skip, 10):
			w.Header().Set("X-Traffic-Next", strconv.FormatInt(end, 10))
			w.Header().Set("X-Traffic-End", strconv.FormatInt(end, 10))
			w.Write(b)
		default:
			t.Errorf("a read from %s", from)
			w.WriteHeader(400)
		}
	}))
	defer srv.Close()
	var logs []string
	nl := (&Gateway{Nodes: []string{srv.URL}}).Logs(func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) })
	var got []string
	read := func() error {
		return nl.Read(t.Context(), func(e *trafficlog.Event) { got = append(got, e.ID) })
	}
	// No way past yet: the first record, then a wait at the damage.
	for range 2 {
		if err := read(); err == nil {
			t.Fatal("a read of the only node, damaged, succeeded")
		}
	}
	if strings.Join(got, ",") != "a" || reads[""] != 1 || reads["0"] != 0 {
		t.Fatalf("events %v, reads %v; want a once, and no read from the oldest again", got, reads)
	}
	// The node started another segment: the trainer skips to it.
	mu.Lock()
	segmentNext = true
	mu.Unlock()
	if err := read(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("events %v; want a, b", got)
	}
	want := fmt.Sprintf("skipping to position %d, where that log's next segment begins", skip)
	if !strings.Contains(strings.Join(logs, "\n"), want) {
		t.Errorf("logs:\n%s\nwant a line saying %q", strings.Join(logs, "\n"), want)
	}
}

// feedbackRecord returns the framed log record of a label of 1 for
// prediction id of ctr.
func feedbackRecord(id string) []byte {
	return trafficlog.AppendRecord(nil, &trafficlog.Event{Kind: trafficlog.Feedback, Time: time.Unix(1700000000, 0).UTC(),
		ID: id, Model: "ctr", Label: 1, HasLabel: true})
}
