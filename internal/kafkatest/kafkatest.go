// Package kafkatest starts in-process Kafka clusters (franz-go's kfake)
// for tests of the traffic log in Kafka, with brokers a test can take
// down: their listeners stop accepting and close every connection, as
// when the brokers' host goes away; and bring back up, listening again on
// the same addresses with what they held, as a restarted broker does.
package kafkatest

import (
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Cluster starts one broker (unless opts say more) with topic of
// partitions; takeDown takes the brokers named by their node ids down,
// or all of them. It is closed when t ends.
func Cluster(t testing.TB, topic string, partitions int32, opts ...kfake.Opt) (c *kfake.Cluster, takeDown func(ids ...int32)) {
	t.Helper()
	c, b := Start(t, topic, partitions, opts...)
	return c, b.TakeDown
}

// Brokers are a cluster's listeners, in the order of the brokers' node
// ids. Their methods are safe for concurrent use.
type Brokers struct {
	t testing.TB
	// mu protects lns.
	mu  sync.Mutex
	lns []*listener
}

// Start is Cluster, returning the brokers to take down and bring up.
func Start(t testing.TB, topic string, partitions int32, opts ...kfake.Opt) (*kfake.Cluster, *Brokers) {
	t.Helper()
	b := &Brokers{t: t}
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			l := &listener{ln: ln, network: network, closed: make(chan struct{})}
			b.mu.Lock()
			b.lns = append(b.lns, l)
			b.mu.Unlock()
			return l, nil
		})}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, b
}

// each calls f with the listeners of the brokers named by ids, or all.
func (b *Brokers) each(ids []int32, f func(*listener)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, l := range b.lns {
		if len(ids) == 0 || slices.Contains(ids, int32(i)) {
			f(l)
		}
	}
}

// TakeDown takes the brokers named by their node ids down, or all of
// them: connecting to them is refused, and their connections are closed.
func (b *Brokers) TakeDown(ids ...int32) { b.each(ids, (*listener).takeDown) }

// BringUp brings the brokers named by their node ids back up, or all of
// them, on the addresses they had; the test fails if one cannot listen
// there again.
func (b *Brokers) BringUp(ids ...int32) {
	b.t.Helper()
	b.each(ids, func(l *listener) {
		if err := l.bringUp(); err != nil {
			b.t.Fatalf("cannot bring the broker at %s back up: %v", l.Addr(), err)
		}
	})
}

// listener is a broker's listener that can be taken down and brought
// back up. kfake's accept loop calls Accept; while the broker is down,
// Accept waits for it to come up (or for Close).
type listener struct {
	network string
	closed  chan struct{} // closed by Close
	// mu protects ln, conns, down, up and isClosed.
	mu    sync.Mutex
	ln    net.Listener // the one listening, or the last one, closed, while down
	conns []net.Conn
	down  bool
	up    chan struct{} // closed when a broker taken down is up again
	// isClosed is whether Close was called.
	isClosed bool
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		ln := l.ln
		l.mu.Unlock()
		c, err := ln.Accept()
		l.mu.Lock()
		switch {
		case l.isClosed:
			l.mu.Unlock()
			if c != nil {
				c.Close()
			}
			return nil, net.ErrClosed
		case err != nil && (l.down || l.ln != ln):
			// Taken down (and perhaps up again since): wait for the
			// listener that replaces ln.
			up := l.up
			l.mu.Unlock()
			if up != nil {
				select {
				case <-up:
				case <-l.closed:
				}
			}
			continue
		case err != nil:
			l.mu.Unlock()
			return nil, err
		case l.down:
			c.Close()
			l.mu.Unlock()
			continue
		}
		l.conns = append(l.conns, c)
		l.mu.Unlock()
		return c, nil
	}
}

func (l *listener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ln.Addr()
}

func (l *listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed {
		return nil
	}
	l.isClosed = true
	close(l.closed)
	return l.ln.Close()
}

func (l *listener) takeDown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down || l.isClosed {
		return
	}
	l.down = true
	l.up = make(chan struct{})
	l.ln.Close()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *listener) bringUp() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down || l.isClosed {
		return nil
	}
	ln, err := net.Listen(l.network, l.ln.Addr().String())
	if err != nil {
		return err
	}
	l.ln, l.down = ln, false
	close(l.up)
	return nil
}
