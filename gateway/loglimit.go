package gateway

import (
	"fmt"
	"sync"
	"time"
)

// logLimiter lets a recurring log line through at most once per every for
// each key (a shadow, a kind of failure), and counts those it holds back,
// so that a failure that repeats on every request says why once a minute
// without flooding the log. Safe for concurrent use.
type logLimiter[K comparable] struct {
	every time.Duration
	// maxKeys bounds the keys remembered: past it, those not logged for
	// a period are forgotten (shadows replaced long ago, say).
	maxKeys int

	// mu protects last, when each key was last logged, and held, how many
	// lines of it were held back since.
	mu   sync.Mutex
	last map[K]time.Time
	held map[K]int
}

func newLogLimiter[K comparable](every time.Duration, maxKeys int) *logLimiter[K] {
	return &logLimiter[K]{every: every, maxKeys: maxKeys, last: make(map[K]time.Time), held: make(map[K]int)}
}

// allow reports whether k's line may be logged now, and if so, a suffix
// for it saying how many were held back since the last one ("" for none).
func (l *logLimiter[K]) allow(k K) (suffix string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if last, seen := l.last[k]; seen && now.Sub(last) < l.every {
		l.held[k]++
		return "", false
	}
	more := l.held[k]
	l.last[k] = now
	delete(l.held, k)
	if len(l.last) > l.maxKeys {
		for key, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, key)
				delete(l.held, key)
			}
		}
	}
	if more > 0 {
		suffix = fmt.Sprintf(" (and %d more since the last line)", more)
	}
	return suffix, true
}
