package loglimit

import (
	"testing"
	"time"
)

func TestAllowOncePerPeriodWithCount(t *testing.T) {
	l := New[string](time.Minute, 8)
	passed := 0
	for range 5 {
		if _, ok := l.Allow("a"); ok {
			passed++
		}
	}
	if passed != 1 {
		t.Fatalf("%d of 5 lines passed; want 1", passed)
	}
	if _, ok := l.Allow("b"); !ok {
		t.Fatal("another key was held back")
	}
	if _, ok := l.Allow("b"); ok {
		t.Fatal("b passed twice in a period")
	}
	l.Backdate(time.Minute)
	suffix, ok := l.Allow("a")
	if !ok || suffix != " (and 4 more since the last line)" {
		t.Fatalf("a period later: %q, %v; want the 4 held back counted", suffix, ok)
	}
	if suffix, _ := l.Allow("b"); suffix != " (and 1 more since the last line)" {
		t.Fatalf("b a period later: %q", suffix)
	}
}

// Past maxKeys, keys not logged for a period are forgotten.
func TestKeysAreBounded(t *testing.T) {
	l := New[int](time.Minute, 4)
	for k := range 4 {
		l.Allow(k)
	}
	l.Backdate(time.Minute)
	l.Allow(100) // over the bound: the four old keys go
	if n := len(l.last); n != 1 {
		t.Fatalf("%d keys remembered; want 1", n)
	}
}
