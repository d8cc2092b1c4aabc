package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a one-line progress bar for the running step on a
// terminal: step name, elapsed and total time, the current rate of
// answers and the errors so far. A nil *progress draws nothing.
type progress struct {
	w io.Writer
}

// newProgress returns a progress bar on w, or nil when w is nil or not a
// terminal.
func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progress{w: w}
}

// start draws the bar of step name until stop is called; live reports the
// answers and errors so far.
func (p *progress) start(name string, total time.Duration, live func() (done, errs int64)) (stop func()) {
	if p == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		const every = 250 * time.Millisecond
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		prevAt, prevDone := start, int64(0)
		for {
			select {
			case <-quit:
				fmt.Fprint(p.w, "\r\x1b[K")
				return
			case now := <-t.C:
				done, errs := live()
				rate := float64(done-prevDone) / now.Sub(prevAt).Seconds()
				prevAt, prevDone = now, done
				elapsed := now.Sub(start)
				frac := min(elapsed.Seconds()/max(total.Seconds(), 1e-9), 1)
				const width = 24
				full := int(frac * width)
				bar := strings.Repeat("=", full) + strings.Repeat(" ", width-full)
				fmt.Fprintf(p.w, "\r\x1b[K%-30s [%s] %5.1fs/%.1fs %10s/s  errors %d",
					name, bar, elapsed.Seconds(), total.Seconds(), groupThousands(rate), errs)
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}
