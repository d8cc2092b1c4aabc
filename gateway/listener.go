package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/infergate/infergate/oip"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/infergate/infergate/internal/logging"
)

// limitListener bounds the connections served at once. One over the limit
// gets a 503 with Retry-After and a JSON body, like every other refusal,
// and is closed; fasthttp's own limit (set above this one) stays as a
// backstop and answers in plain text. At most maxRefusing refused
// connections are answered at once; beyond them one is closed unanswered.
type limitListener struct {
	net.Listener
	limit     int64
	open      atomic.Int64
	refuse    []byte // the whole response sent to a refused connection
	headBytes int    // the most of a refused request read before answering

	// refusing holds a token per refused connection being answered.
	refusing chan struct{}
	// mu protects refused (the connections being answered), served (those
	// Accept returned, until closed) and closed.
	mu      sync.Mutex
	refused map[net.Conn]struct{}
	served  map[*limitConn]struct{}
	closed  bool
	// answering counts the goroutines that answer refused connections
	// and those that drain closing ones; Close waits for them.
	answering sync.WaitGroup
	// logf reports accept errors the listener waits out.
	logf func(format string, args ...any)
	// eagerWrites arms every write deadline when it is set (see
	// limitConn.SetWriteDeadline); set before Accept is first called.
	eagerWrites bool
}

// Limits on answering a refused connection (see answer).
const (
	maxRefusing     = 64
	refuseReadTime  = time.Second
	refuseDrainTime = 200 * time.Millisecond
	refuseDrainMax  = 1 << 20
	// lingerTime bounds reading what a client still sends after the
	// server answered a request it could not read whole (see linger).
	lingerTime = time.Second
	// maxAcceptDelay is the longest wait between accepts that fail for
	// want of file descriptors or memory.
	maxAcceptDelay = time.Second
	// unusedAfter is how long a connection must have sent nothing that
	// was read before a shutdown takes it for unused (see closeUnused).
	unusedAfter = time.Second
)

func newLimitListener(ln net.Listener, limit, headBytes int, logf func(string, ...any)) *limitListener {
	return newLimitListenerSaying(ln, limit, headBytes, logf, fmt.Sprintf("this server has %d connections open, its --max-connections; retry later, or reuse connections (keep-alive)", limit))
}

// newLimitListenerSaying is newLimitListener whose refusals say why in
// refusal's words.
func newLimitListenerSaying(ln net.Listener, limit, headBytes int, logf func(string, ...any), refusal string) *limitListener {
	body := string(append(oip.AppendJSONString([]byte(`{"error":`), refusal), '}'))
	resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return &limitListener{Listener: ln, limit: int64(limit), refuse: []byte(resp), headBytes: headBytes,
		refusing: make(chan struct{}, maxRefusing), refused: make(map[net.Conn]struct{}), served: make(map[*limitConn]struct{}), logf: logf}
}

// Accept returns the next connection within the limit, refusing those
// beyond it on the way. An accept that fails for want of file
// descriptors or memory is tried again after a pause that doubles up to
// maxAcceptDelay: passed up, it would end fasthttp's Serve, and the
// server with it.
func (l *limitListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !resourceShortage(err) {
				return nil, err
			}
			delay = min(max(2*delay, 5*time.Millisecond), maxAcceptDelay)
			if l.logf != nil {
				l.logf(logging.Error+"gateway: cannot accept a connection: %v; trying again in %s (raise the open files limit, ulimit -n, or lower --max-connections)", err, delay)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		if l.open.Add(1) <= l.limit {
			lc := &limitConn{Conn: c, l: l, accepted: time.Now()}
			l.mu.Lock()
			l.served[lc] = struct{}{}
			l.mu.Unlock()
			return lc, nil
		}
		l.open.Add(-1)
		l.refuseConn(c)
	}
}

// refuseConn answers c, a connection over the limit, on a goroutine of
// its own, or closes it when maxRefusing are being answered already or the
// listener is closed.
func (l *limitListener) refuseConn(c net.Conn) {
	if !l.goTracked(c, l.answer) {
		c.Close()
	}
}

// goTracked runs f(c) on a goroutine of its own, for a connection that
// the server is done with but must still read from, and then closes c:
// reported false, without running f, when maxRefusing such goroutines run
// already or the listener is closed. Close closes c meanwhile and waits
// for the goroutine.
func (l *limitListener) goTracked(c net.Conn, f func(net.Conn)) bool {
	select {
	case l.refusing <- struct{}{}:
	default:
		return false
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.refusing
		return false
	}
	l.refused[c] = struct{}{}
	l.answering.Add(1)
	l.mu.Unlock()
	go func() {
		defer func() {
			l.mu.Lock()
			delete(l.refused, c)
			l.mu.Unlock()
			c.Close()
			<-l.refusing
			l.answering.Done()
		}()
		f(c)
	}()
	return true
}

// answer reads the head of the refused request before it writes the 503:
// an answer that comes before the request is discarded by clients (Go's:
// "unsolicited response on idle HTTP channel"). It then ends its side of
// the connection and reads what the client still sends (its body), for a
// moment and a MiB at most, because closing with unread bytes resets the
// connection, and the client may lose the answer with it.
func (l *limitListener) answer(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(refuseReadTime))
	var head []byte
	buf := make([]byte, 2048)
	for len(head) < l.headBytes && !bytes.Contains(head, headEnd) {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	resp := l.refuse
	if live, head := isLiveProbe(head); live {
		resp = liveResponse
		if head {
			resp = resp[:len(resp)-len(liveBody)]
		}
	}
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Write(resp); err != nil {
		return
	}
	drain(c, refuseDrainTime, refuseDrainMax)
}

// drain ends the server's side of c and reads what the client still
// sends, for d and limit bytes at most: closing with unread bytes resets
// the connection, and the client may lose the answer with it.
func drain(c net.Conn, d time.Duration, limit int64) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(d))
	io.CopyN(io.Discard, c, limit)
}

var headEnd = []byte("\r\n\r\n")

// liveResponse is the answer to a liveness probe over the limit: the
// process is alive, only busy, and a probe that failed would get it
// restarted, dropping every request it serves (see isLiveProbe).
var liveResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
	strconv.Itoa(len(liveBody)) + "\r\n\r\n" + liveBody)

const liveBody = `{"live":true}`

// isLiveProbe reports whether head, the start of a refused connection's
// request, is GET or HEAD /v2/health/live, which is answered as the
// server answers it within the limit, and whether it is a HEAD.
func isLiveProbe(head []byte) (live, isHead bool) {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	for _, m := range []string{"GET ", "HEAD "} {
		if rest, ok := bytes.CutPrefix(line, []byte(m)); ok {
			path, _, _ := bytes.Cut(rest, []byte(" "))
			path, _, _ = bytes.Cut(path, []byte("?"))
			return string(path) == "/v2/health/live", m == "HEAD "
		}
	}
	return false, false
}

// resourceShortage reports whether accept failed for want of file
// descriptors or kernel memory, a shortage that passes.
func resourceShortage(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// linger closes c, a connection the server answered without reading the
// whole request (a body over the limit, headers too large, a malformed
// request): it ends its side, then reads what the client still sends,
// for lingerTime at most, on a goroutine of its own, and closes. Closed at
// once with unread bytes, the connection would be reset, and the client
// would likely lose the answer (RFC 9112, 9.6). When maxRefusing
// connections are being answered or drained already, or the listener is
// closed, it reports false and the caller closes c at once.
func (l *limitListener) linger(c net.Conn) bool {
	return l.goTracked(c, func(c net.Conn) { drain(c, lingerTime, math.MaxInt64) })
}

// closeUnused closes the connections from which nothing was read in
// their first unusedAfter: a client pool's spare connection, a browser's
// or a load balancer's pre-connect. fasthttp counts such a connection as
// busy for its first seconds, so that a shutdown would wait for it;
// closed, nothing is lost. A younger one may hold a request not read yet.
func (l *limitListener) closeUnused() {
	l.mu.Lock()
	var unused []*limitConn
	for c := range l.served {
		if !c.used.Load() && time.Since(c.accepted) > unusedAfter {
			unused = append(unused, c)
		}
	}
	l.mu.Unlock()
	for _, c := range unused {
		c.Conn.Close() // its serving goroutine reads the error and Closes c
	}
}

// Close closes the listener, then the connections still being answered
// or drained, and waits for their goroutines.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.refused {
		c.Close()
	}
	l.mu.Unlock()
	l.answering.Wait()
	return err
}

// limitConn gives its slot back when closed, once, and sets deadlines
// lazily (see lazyDeadline).
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
	// lingers is set by the server when it answered a request it did
	// not read whole: Close then lingers (see limitListener.linger).
	lingers atomic.Bool
	// used is set once a byte was read from it, and accepted is when
	// Accept returned it (see closeUnused).
	used     atomic.Bool
	accepted time.Time

	// mu protects the deadlines: fasthttp sets them from the serving
	// goroutine, a handler may from its own (RequestCtx.SetReadDeadline),
	// and Read and Write re-arm them.
	mu            sync.Mutex
	read, written lazyDeadline
}

// lazyDeadline is one direction's deadline, set on the connection only
// when it must be. fasthttp asks for a new deadline about three times a
// request (the idle, read and write timeouts), and each costs a runtime
// timer update: 4% of the gateway's CPU at 190k requests/s on 8 cores. A deadline
// that moves later is only recorded in want; the one armed on the
// connection fires early, and Read or Write then arms want and carries
// on, so the deadline that takes effect is want, exactly. A deadline that
// moves earlier is armed at once. On a busy connection that is one timer
// update per timeout period instead of one per request.
type lazyDeadline struct {
	armed, want time.Time
}

// set records t and reports whether it must be armed now: it comes
// before the armed one (or the armed one is none).
func (d *lazyDeadline) set(t time.Time) bool {
	d.want = t
	if t.Equal(d.armed) || !(t.IsZero() || d.armed.IsZero() || t.Before(d.armed)) {
		return false
	}
	d.armed = t
	return true
}

// rearm is called after the armed deadline fired, at now: it reports
// whether the caller should arm want and retry, since want lies later.
func (d *lazyDeadline) rearm(now time.Time) bool {
	if d.armed.Equal(d.want) || (!d.want.IsZero() && !now.Before(d.want)) {
		return false
	}
	d.armed = d.want
	return true
}

func (c *limitConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.read, t, c.Conn.SetReadDeadline)
}

func (c *limitConn) SetWriteDeadline(t time.Time) error {
	if c.l.eagerWrites {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.written = lazyDeadline{armed: t, want: t}
		return c.Conn.SetWriteDeadline(t)
	}
	return c.setDeadline(&c.written, t, c.Conn.SetWriteDeadline)
}

// setDeadline records t as d's deadline and arms it with arm when it must
// be armed now.
func (c *limitConn) setDeadline(d *lazyDeadline, t time.Time, arm func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.set(t) {
		return arm(t)
	}
	return nil
}

func (c *limitConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Read reads, arming the wanted deadline whenever an earlier armed one
// fires.
func (c *limitConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 && !c.used.Load() {
			c.used.Store(true)
		}
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.extend(&c.read, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

// Write writes all of p, arming the wanted deadline whenever an earlier
// armed one fires.
func (c *limitConn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.extend(&c.written, c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}

// extend arms d's wanted deadline after its armed one fired, and reports
// whether the interrupted call should go on.
func (c *limitConn) extend(d *lazyDeadline, arm func(time.Time) error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !d.rearm(time.Now()) {
		return false
	}
	return arm(d.armed) == nil
}

func (c *limitConn) Close() error {
	first := false
	c.once.Do(func() {
		first = true
		c.l.open.Add(-1)
		c.l.mu.Lock()
		delete(c.l.served, c)
		c.l.mu.Unlock()
	})
	if first && c.lingers.Load() && c.l.linger(c.Conn) {
		return nil
	}
	return c.Conn.Close()
}
