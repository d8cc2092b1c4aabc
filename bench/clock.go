package bench

import (
	"syscall"
	"time"
)

// preciseSleepUntil returns at t or shortly after. The Go runtime wakes
// timers shorter than a millisecond only about a millisecond late on
// Linux, which would bunch an open-loop schedule of thousands of requests
// per second into bursts; so the last stretch is slept with nanosleep(2),
// which wakes within tens of microseconds. Longer waits sleep on a Go
// timer first, so that no thread is held for them.
func preciseSleepUntil(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	if d > 2*time.Millisecond {
		time.Sleep(d - 1500*time.Microsecond)
		if d = time.Until(t); d <= 0 {
			return
		}
	}
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
