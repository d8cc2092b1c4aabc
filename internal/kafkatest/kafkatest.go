// Package kafkatest starts in-process Kafka clusters (franz-go's kfake)
// for tests of the traffic log in Kafka, with brokers a test can take
// down: their listeners stop accepting and close every connection, as
// when the brokers' host goes away.
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
	var mu sync.Mutex
	var lns []*listener
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			l := &listener{Listener: ln}
			mu.Lock()
			lns = append(lns, l)
			mu.Unlock()
			return l, nil
		})}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, func(ids ...int32) {
		mu.Lock()
		defer mu.Unlock()
		for i, l := range lns { // the brokers listen in the order of their ids
			if len(ids) == 0 || slices.Contains(ids, int32(i)) {
				l.takeDown()
			}
		}
	}
}

// listener is a broker's listener that can be taken down.
type listener struct {
	net.Listener
	// mu protects conns and down.
	mu    sync.Mutex
	conns []net.Conn
	down  bool
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		c.Close()
	} else {
		l.conns = append(l.conns, c)
	}
	return c, nil
}

func (l *listener) takeDown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	l.Listener.Close()
	for _, c := range l.conns {
		c.Close()
	}
}
