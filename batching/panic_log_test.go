package batching

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A backend that panics on every run logs its stack once, then one line
// every 10 s at most, saying how many it held back: a client sending the
// request that makes it panic in a loop wrote a stack a request, and filled
// the disk under the log.
func TestBackendPanicsLogOnceInAWhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu    sync.Mutex
			lines []string
		)
		logf := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf(format, args...))
		}
		b := newBatcher(t, &fakeBackend{compute: time.Millisecond, panicOn: 3}, Config{MaxBatchSize: 8, Logf: logf})
		for range 50 {
			if err := b.Do(request(3, 1, 0)); err == nil || !strings.Contains(err.Error(), "backend panicked") {
				t.Fatalf("got %v; want the panic as an error", err)
			}
		}
		mu.Lock()
		if len(lines) != 1 || !strings.Contains(lines[0], "backend panicked") || !strings.Contains(lines[0], "goroutine") {
			t.Fatalf("50 panics in 50 ms logged %d lines; want 1, with the stack:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		mu.Unlock()
		time.Sleep(10 * time.Second)
		if err := b.Do(request(3, 1, 0)); err == nil {
			t.Fatal("no error")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(lines) != 2 || !strings.Contains(lines[1], "(and 49 more since the last line)") {
			t.Fatalf("a panic 10 s later logged %q; want one line counting the 49 held back", lines[1:])
		}
	})
}
