package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// pipeConn returns a limitConn over one end of a pipe, and the other end.
func pipeConn(t *testing.T) (*limitConn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &limitConn{Conn: a, l: &limitListener{}}, b
}

// readAt starts a Read on c and returns a channel that receives how long
// after start it returned, and its error.
func readAt(c net.Conn, start time.Time) <-chan error {
	ch := make(chan error, 1)
	go func() {
		buf := make([]byte, 8)
		_, err := c.Read(buf)
		if err == nil {
			ch <- errors.New("read returned data")
			return
		}
		if d := time.Since(start); !errors.Is(err, os.ErrDeadlineExceeded) {
			ch <- err
		} else {
			ch <- &readTimedOut{after: d}
		}
	}()
	return ch
}

type readTimedOut struct{ after time.Duration }

func (e *readTimedOut) Error() string { return "timed out after " + e.after.String() }

// TestLazyDeadlineTakesEffectExactly checks that a connection's read
// deadline fires at the last one set, whether it moved later (kept only
// in the conn until the armed one fires), earlier (armed at once), or
// away (zero).
func TestLazyDeadlineTakesEffectExactly(t *testing.T) {
	f := func(name string, sets []time.Duration, want time.Duration) {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, peer := pipeConn(t)
				start := time.Now()
				for _, d := range sets {
					var at time.Time
					if d > 0 {
						at = start.Add(d)
					}
					if err := c.SetReadDeadline(at); err != nil {
						t.Fatal(err)
					}
				}
				ch := readAt(c, start)
				if want == 0 {
					// No deadline: the read waits for data.
					time.Sleep(time.Hour)
					synctest.Wait()
					select {
					case err := <-ch:
						t.Fatalf("read without a deadline returned %v", err)
					default:
					}
					peer.Write([]byte("x"))
					if err := <-ch; err.Error() != "read returned data" {
						t.Fatalf("got %v; want the data", err)
					}
					return
				}
				err := <-ch
				var to *readTimedOut
				if !errors.As(err, &to) || to.after != want {
					t.Fatalf("got %v; want a timeout after exactly %s", err, want)
				}
			})
		})
	}
	f("one", []time.Duration{50 * time.Millisecond}, 50*time.Millisecond)
	f("later", []time.Duration{50 * time.Millisecond, 200 * time.Millisecond}, 200*time.Millisecond)
	f("later twice", []time.Duration{50 * time.Millisecond, 90 * time.Second, 30 * time.Second}, 30*time.Second)
	f("earlier", []time.Duration{200 * time.Millisecond, 50 * time.Millisecond}, 50*time.Millisecond)
	f("later then earlier", []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, 100 * time.Millisecond}, 100*time.Millisecond)
	f("none", []time.Duration{50 * time.Millisecond, 0}, 0)
	f("none then one", []time.Duration{50 * time.Millisecond, 0, time.Second}, time.Second)
}

// TestLazyDeadlineFiredWhileIdle checks that an armed deadline that fires
// between reads, on a connection whose wanted deadline lies later, costs
// the next read nothing: it reads its data.
func TestLazyDeadlineFiredWhileIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := pipeConn(t)
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		c.SetReadDeadline(time.Now().Add(time.Second))
		time.Sleep(20 * time.Millisecond) // the armed deadline has fired
		go peer.Write([]byte("abc"))
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "abc" {
			t.Fatalf("got %q, %v; want abc", buf, err)
		}
	})
}

// TestLazyWriteDeadline checks that a write blocked past an armed write
// deadline that was moved later writes everything, and that one blocked
// past the wanted deadline stops there.
func TestLazyWriteDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := pipeConn(t)
		start := time.Now()
		c.SetWriteDeadline(start.Add(10 * time.Millisecond))
		c.SetWriteDeadline(start.Add(100 * time.Millisecond))
		done := make(chan error, 1)
		go func() {
			n, err := c.Write([]byte("0123456789"))
			if err == nil && n != 10 {
				err = errors.New("short write")
			}
			done <- err
		}()
		time.Sleep(50 * time.Millisecond) // past the armed deadline
		buf := make([]byte, 10)
		if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "0123456789" {
			t.Fatalf("read %q, %v; want all ten bytes", buf, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("write: %v; want it whole", err)
		}
		go func() {
			_, err := c.Write([]byte("more"))
			done <- err
		}()
		err := <-done
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("got %v after %s; want a timeout at 100ms", err, time.Since(start))
		}
	})
}
