package trainer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// logServer serves a node's traffic log of recs, in answers of at most
// per records.
func logServer(t *testing.T, recs [][]byte, per int) *httptest.Server {
	var starts []int64 // each record's position, then the end
	pos := int64(0)
	for _, r := range recs {
		starts = append(starts, pos)
		pos += int64(len(r))
	}
	starts = append(starts, pos)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from := int64(0)
		if s := r.URL.Query().Get("from"); s != "" {
			from, _ = strconv.ParseInt(s, 10, 64)
		}
		i := 0
		for i < len(recs) && starts[i] < from {
			i++
		}
		if starts[i] != from {
			t.Errorf("a read from %d, no record's position", from)
		}
		j := min(i+per, len(recs))
		w.Header().Set("X-Traffic-Next", strconv.FormatInt(starts[j], 10))
		w.Header().Set("X-Traffic-End", strconv.FormatInt(pos, 10))
		for _, rec := range recs[i:j] {
			w.Write(rec)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Feedback posted to node A for node B's predictions: the nodes' logs
// are read merged by time, so each label comes after its prediction. Read
// one node after the other, A's backlog of labels came first, as orphans,
// and past the Joiner's bound on them (6 times its window) they were
// forgotten: B's predictions then had no labels to train on.
func TestNodeLogsMergeByTime(t *testing.T) {
	const n, window = 100, 10
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var a, b [][]byte
	for i := range n {
		at := t0.Add(time.Duration(2*i) * time.Second)
		id := fmt.Sprint("b-", i)
		b = append(b, trafficlog.AppendRecord(nil, &trafficlog.Event{Kind: trafficlog.Prediction, Time: at, ID: id, Model: "ctr", Version: 1,
			Inputs: []oip.Tensor{fp32Row("features", float32(i))}, Outputs: []oip.Tensor{fp32Row("score", 0.5)}}))
		a = append(a, trafficlog.AppendRecord(nil, &trafficlog.Event{Kind: trafficlog.Feedback, Time: at.Add(time.Second), ID: id, Model: "ctr",
			Label: 1, HasLabel: true}))
	}
	// Then outcomes of predictions A's log did not sample: orphans for
	// good, which make the Joiner forget orphans again.
	for i := range 7 * window {
		a = append(a, trafficlog.AppendRecord(nil, &trafficlog.Event{Kind: trafficlog.Feedback, Time: t0.Add(time.Duration(2*n+i) * time.Second),
			ID: fmt.Sprint("x-", i), Model: "ctr", Label: 1, HasLabel: true}))
	}
	g := &Gateway{Nodes: []string{logServer(t, a, 7).URL, logServer(t, b, 9).URL}}
	j := NewJoiner("ctr", "features", 1, window)
	var times []time.Time
	err := g.Logs(t.Logf).Read(t.Context(), func(e *trafficlog.Event) {
		times = append(times, e.Time)
		j.Add(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != 2*n+7*window {
		t.Fatalf("read %d events; want %d", len(times), 2*n+7*window)
	}
	exs, st := j.Examples()
	if len(exs) != window {
		t.Fatalf("%d labeled examples (%+v); want the window's %d, each with its label from the other node", len(exs), st, window)
	}
	for i := 1; i < len(times); i++ {
		if times[i].Before(times[i-1]) {
			t.Fatalf("event %d of %s after one of %s: not in time order", i, times[i].Format(time.TimeOnly), times[i-1].Format(time.TimeOnly))
		}
	}
}

// A merged Read holds one answer of each node's at once: the answers it
// asks for add up to the 16 MiB one answer was before the merge, not 16
// MiB per node (a trainer sized for one answer ran out of memory catching
// up with a backlog on a cluster of many nodes).
func TestNodeLogsMergeHoldsOneAnswersWorth(t *testing.T) {
	f := func(nodes int, want int) {
		t.Helper()
		var asked []int
		g := &Gateway{}
		for range nodes {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := strconv.Atoi(r.URL.Query().Get("max_bytes"))
				asked = append(asked, n)
				w.Header().Set("X-Traffic-Next", "0")
				w.Header().Set("X-Traffic-End", "0")
			}))
			t.Cleanup(srv.Close)
			g.Nodes = append(g.Nodes, srv.URL)
		}
		if err := g.Logs(t.Logf).Read(t.Context(), func(*trafficlog.Event) {}); err != nil {
			t.Fatal(err)
		}
		for _, n := range asked {
			if n != want {
				t.Fatalf("%d nodes: asked each for answers of %v bytes; want %d", nodes, asked, want)
			}
		}
	}
	f(1, maxTrafficAnswer)
	f(4, maxTrafficAnswer/4)
	// Not below 1 MiB: a record larger than that comes alone anyway.
	f(64, 1<<20)
}
