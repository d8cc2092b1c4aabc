package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// traffic read --follow goes on through what clears by itself: a node
// that does not answer for a while (restarting: connections reset, then
// 503), and a damaged record (skipped to the next segment, as the trainer
// does, saying what is lost). Before, each ended it with exit 1.
func TestTrafficFollowRidesOutOutagesAndDamage(t *testing.T) {
	var (
		mu    sync.Mutex
		calls int
		froms []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		froms = append(froms, r.URL.Query().Get("from"))
		mu.Unlock()
		from := r.URL.Query().Get("from")
		h := w.Header()
		h.Set("X-Traffic-Log", "log-1")
		switch {
		case n == 1: // the first record
			h.Set("X-Traffic-Next", "10")
			h.Set("X-Traffic-End", "10")
			io.WriteString(w, `{"record":1}`+"\n")
		case n <= 3: // the node goes down: connections reset
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case n == 4: // it starts
			h.Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"not ready"}`)
		case from == "10": // damage there; the next segment starts at 30
			h.Set("X-Traffic-Damaged", "10")
			h.Set("X-Traffic-Skip", "30")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"damaged traffic log record at position 10 (checksum mismatch)"}`)
		case from == "30":
			h.Set("X-Traffic-Next", "40")
			h.Set("X-Traffic-End", "40")
			io.WriteString(w, `{"record":2}`+"\n")
		default:
			h.Set("X-Traffic-Next", from)
			h.Set("X-Traffic-End", from)
		}
	}))
	defer srv.Close()

	p := startFollow(t, "--addr", srv.URL, "--follow", "--poll", "20ms")
	lines, exited, stderr := p.lines, p.exited, &p.stderr
	for _, want := range []string{`{"record":1}`, `{"record":2}`} {
		select {
		case got, ok := <-lines:
			if !ok {
				<-exited
				t.Fatalf("traffic read --follow ended (%v) before %s; stderr:\n%s", p.err, want, stderr.String())
			}
			if got != want {
				t.Fatalf("got line %q; want %q", got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no line %s in 20s; stderr:\n%s", want, stderr.String())
		}
	}
	for _, want := range []string{
		"trying again every 20ms",
		"reached the node again",
		"skipping to position 30, where the next segment begins: the records from 10 to 30 are lost",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	select {
	case <-exited:
		t.Fatalf("traffic read --follow ended: %v", p.err)
	default:
	}
}

// followProc is a `traffic read` running: its stdout's lines (closed at
// its end), its stderr, and exited, closed once it has ended with err.
type followProc struct {
	lines  chan string
	stderr syncBuffer
	exited chan struct{}
	err    error
}

// startFollow starts `infergate traffic read args...`, killed when the
// test ends.
func startFollow(t *testing.T, args ...string) *followProc {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"traffic", "read"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &followProc{lines: make(chan string, 16), exited: make(chan struct{})}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p
}

// checkFollowEnds runs `infergate traffic read args...` (a --follow that
// no waiting helps) and checks that it ends within 20 s, exit 1, saying
// fragment.
func checkFollowEnds(t *testing.T, fragment string, args ...string) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"traffic", "read"}, args...)...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("traffic read %s still ran after 20s:\n%s", strings.Join(args, " "), out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), fragment) {
		t.Fatalf("traffic read %s: %v\n%s\nwant exit 1 saying %q", strings.Join(args, " "), err, out, fragment)
	}
}

// A --follow whose address no waiting fixes (a server whose certificate
// is not trusted; a name that does not resolve) ends with the error, as
// without --follow: it tried again for ever.
func TestTrafficFollowEndsOnAWrongAddress(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	checkFollowEnds(t, "certificate", "--addr", srv.URL, "--follow", "--poll", "20ms")
}
