// Package loglimit keeps recurring log lines from flooding a log: a
// Limiter lets each key's line through at most once a period and says
// how many it held back in between.
package loglimit

import (
	"fmt"
	"sync"
	"time"
)

// Limiter lets a recurring log line through at most once per period for
// each key (a shadow, a kind of failure, the line itself), and counts
// those it holds back, so that a failure that repeats on every request
// says why once a minute without flooding the log. Safe for concurrent
// use.
type Limiter[K comparable] struct {
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

// New returns a Limiter that lets each key through once per every, and
// remembers up to about maxKeys keys.
func New[K comparable](every time.Duration, maxKeys int) *Limiter[K] {
	return &Limiter[K]{every: every, maxKeys: maxKeys, last: make(map[K]time.Time), held: make(map[K]int)}
}

// Allow reports whether k's line may be logged now, and if so, a suffix
// for it saying how many were held back since the last one ("" for none).
func (l *Limiter[K]) Allow(k K) (suffix string, ok bool) {
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

// Backdate moves every key's last line d into the past, as if d had
// passed: tests use it to skip a period.
func (l *Limiter[K]) Backdate(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, t := range l.last {
		l.last[k] = t.Add(-d)
	}
}

// Shape returns line with every run of digits, and every hexadecimal
// number written 0x..., as one '#': lines that differ only in numbers (a
// term, the local port of each new connection to a stopped peer, the
// address grpc-go names each connection's transport by) are one key for
// a Limiter.
func Shape(line string) string {
	b := make([]byte, 0, len(line))
	for i := 0; i < len(line); {
		c := line[i]
		if !isDigit(c) {
			b = append(b, c)
			i++
			continue
		}
		b = append(b, '#')
		if c == '0' && i+2 < len(line) && (line[i+1] == 'x' || line[i+1] == 'X') && isHex(line[i+2]) {
			for i += 2; i < len(line) && isHex(line[i]); i++ {
			}
			continue
		}
		for ; i < len(line) && isDigit(line[i]); i++ {
		}
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
