package gateway

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener bounds the connections served at once. One over the limit
// gets a 503 with Retry-After and a JSON body, like every other refusal,
// and is closed; fasthttp's own limit (set above this one) stays as a
// backstop and answers in plain text.
type limitListener struct {
	net.Listener
	limit  int64
	open   atomic.Int64
	refuse []byte // the whole response sent to a refused connection
}

func newLimitListener(ln net.Listener, limit int) *limitListener {
	body := fmt.Sprintf(`{"error":"this server has %d connections open, its --max-connections; retry later, or reuse connections (keep-alive)"}`, limit)
	resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return &limitListener{Listener: ln, limit: int64(limit), refuse: []byte(resp)}
}

// Accept returns the next connection within the limit, refusing those
// beyond it on the way.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.limit {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		// A new connection's send buffer is empty: this write does not
		// block, and the deadline makes sure of it.
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(l.refuse)
		c.Close()
	}
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
