package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/trafficlog"
)

// A record damaged on disk after whole ones: a read gets the whole ones
// (200, X-Traffic-Next at the damaged record), the server logs the damage,
// and a read from the damaged record says what is wrong there (found by a
// reviewing helper: the read answered 400 and dropped the whole records,
// and a reader such as the trainer tried the same read for ever).
func TestTrafficReadStopsAtDamage(t *testing.T) {
	dir := t.TempDir()
	cfg, tl, _ := trafficConfigIn(t, dir, 100)
	s := startServer(t, serverOptions{cfg: cfg, files: map[string][]byte{"ctr/1": ctrONNX()}})
	var events []*trafficlog.Event
	for i := range 3 {
		events = append(events, &trafficlog.Event{Kind: trafficlog.Feedback, Time: time.Unix(1700000000, 0).UTC(),
			ID: "imp-" + strconv.Itoa(i), Model: "ctr", Label: 1, HasLabel: true})
	}
	if err := tl.AppendSync(events...); err != nil {
		t.Fatal(err)
	}
	one := len(trafficlog.AppendRecord(nil, events[0]))
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v; want one", segs, err)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[2*one+one-2] ^= 0x10 // a bit of the third record
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}

	lines, r := readTraffic(t, s, "")
	if len(lines) != 2 || lines[1].ID != "imp-1" || r.header["X-Traffic-Next"] != strconv.Itoa(2*one) {
		t.Fatalf("a read over the damaged third record: %d events, next %s; want the two whole ones, next %d", len(lines), r.header["X-Traffic-Next"], 2*one)
	}
	if !strings.Contains(s.log.String(), "traffic log: damaged traffic log record at position "+strconv.Itoa(2*one)+", after a whole one") {
		t.Errorf("the server did not log the damage:\n%s", s.log.String())
	}
	r = s.do(t, "GET", "/v1/traffic?from="+strconv.Itoa(2*one), nil)
	checkError(t, r, fasthttp.StatusBadRequest,
		"damaged traffic log record at position "+strconv.Itoa(2*one)+" (checksum mismatch)")
	// Where, for a reader (the trainer) that knows the position is a
	// record's. The damage is in the segment being written: the read
	// makes the log start the next, and a read then names it, the way past.
	if d := r.header["X-Traffic-Damaged"]; d != strconv.Itoa(2*one) {
		t.Errorf("X-Traffic-Damaged %q; want %d", d, 2*one)
	}
	if id := r.header["X-Traffic-Log"]; id != tl.ID() {
		t.Errorf("X-Traffic-Log %q; want the log's identity, %s", id, tl.ID())
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if skip := r.header["X-Traffic-Skip"]; skip != strconv.Itoa(3*one) {
			r = s.do(t, "GET", "/v1/traffic?from="+strconv.Itoa(2*one), nil)
			return fmt.Errorf("X-Traffic-Skip %q; want %d, the next segment", skip, 3*one)
		}
		return nil
	})
}
