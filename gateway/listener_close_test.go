package gateway

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// Closing the limit listener (as fasthttp's Shutdown does) ends the
// connections it is still answering or draining and waits for their
// goroutines, and no new one starts afterwards.
func TestListenerCloseEndsTrackedConnections(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(tcp, 0, 4096, nil) // every connection is over the limit
	go func() {
		for {
			if _, err := l.Accept(); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		l.mu.Lock()
		n := len(l.refused)
		l.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection was never refused")
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.Close()
	l.mu.Lock()
	closed, left := l.closed, len(l.refused)
	l.mu.Unlock()
	// The client, silent, is still held: the server ends it only when
	// refuseReadTime (1 s) runs out, after the listener closed.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, rerr := c.Read(make([]byte, 1))
	if !closed || left != 0 || errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Fatalf("after limitListener.Close: closed=%v, %d refused connections still tracked, client read %v; want closed, none left, the connection ended at once", closed, left, rerr)
	}
	// Nor does a closed listener refuse new tracked goroutines.
	a, b := net.Pipe()
	defer b.Close()
	if l.goTracked(a, func(net.Conn) {}) {
		t.Fatal("goTracked started a goroutine after the listener closed; want false")
	}
}
