package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// maxTrafficAnswer bounds one answer of GET /v1/traffic that ReadTraffic
// asks for.
const maxTrafficAnswer = 16 << 20

// A Position is where a read of one node's traffic log goes on.
type Position struct {
	// Log is the identity of the log Pos is in (the node's X-Traffic-Log);
	// "" before the first read, or from a node that gives none.
	Log string
	// Pos is the position of the next record; -1: the oldest.
	Pos int64
}

// ReadTraffic reads the traffic log of the gateway at base (its HTTP base
// URL) from position from to its end, in answers of up to 16 MiB, and
// calls fn with each event (valid only during the call). token is the
// admin token, if the gateway has one. It returns the position where a
// later read goes on. A position the log deleted (410) is an *HTTPError
// with Code 410; a log other than from.Log (it started over: the node's
// data wiped or replaced) is a *StartedOverError, before any event of it
// is passed.
func ReadTraffic(ctx context.Context, hc *http.Client, base, token string, from Position, fn func(*trafficlog.Event)) (Position, error) {
	at := from
	var e trafficlog.Event
	for {
		a, err := readAnswer(ctx, hc, base, token, at, maxTrafficAnswer)
		if err != nil {
			return a.next, err
		}
		for body := a.body; len(body) > 0; {
			n, err := trafficlog.Decode(body, &e)
			if err != nil {
				return at, fmt.Errorf("the traffic log of %s: %w", base, err)
			}
			fn(&e)
			body = body[n:]
		}
		at = a.next
		if at.Pos >= a.end {
			return at, nil
		}
	}
}

// answer is one GET /v1/traffic: its records, where the next read goes
// on, and the log's end then.
type answer struct {
	body []byte
	next Position
	end  int64
}

// readAnswer makes one GET /v1/traffic of the node at base from at, for
// records of up to maxBytes (one larger comes alone). On an error, next
// is at with the log's identity the node gave, if any.
func readAnswer(ctx context.Context, hc *http.Client, base, token string, at Position, maxBytes int) (answer, error) {
	base = strings.TrimRight(base, "/")
	a := answer{next: at}
	q := url.Values{"format": {"binary"}, "max_bytes": {strconv.Itoa(maxBytes)}}
	if at.Pos >= 0 {
		q.Set("from", strconv.FormatInt(at.Pos, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/traffic?"+q.Encode(), nil)
	if err != nil {
		return a, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return a, &NodeError{Node: base, Err: err}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 2*maxTrafficAnswer))
	resp.Body.Close()
	if err != nil {
		return a, fmt.Errorf("cannot read the traffic log of %s: %w", base, err)
	}
	if id := resp.Header.Get("X-Traffic-Log"); id != "" {
		if at.Log != "" && id != at.Log && at.Pos >= 0 {
			return a, &StartedOverError{Node: base, Was: at.Log, Now: id}
		}
		a.next.Log = id
	}
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("the traffic log of %s: HTTP %d: %s", base, resp.StatusCode, oip.ErrorMessage(body))
		if pos, err := strconv.ParseInt(resp.Header.Get("X-Traffic-Damaged"), 10, 64); err == nil {
			de := &DamagedError{At: pos, Msg: msg}
			de.Skip, _ = strconv.ParseInt(resp.Header.Get("X-Traffic-Skip"), 10, 64)
			return a, de
		}
		return a, &HTTPError{Code: resp.StatusCode, Msg: msg}
	}
	next, err1 := strconv.ParseInt(resp.Header.Get("X-Traffic-Next"), 10, 64)
	end, err2 := strconv.ParseInt(resp.Header.Get("X-Traffic-End"), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return a, fmt.Errorf("the traffic log of %s: the answer lacks its positions (is it an infergate node?): %w", base, err)
	}
	a.body, a.next.Pos, a.end = body, next, end
	return a, nil
}

// StartedOverError is a node's traffic log that is not the one a
// position was in: the node's log was made anew (its data directory
// wiped or replaced), and the position means nothing in it.
type StartedOverError struct {
	Node     string
	Was, Now string // the logs' identities
}

func (e *StartedOverError) Error() string {
	return fmt.Sprintf("the traffic log of %s started over (it is log %s, no longer %s: the node's data was wiped or replaced)", e.Node, e.Now, e.Was)
}

// DamagedError is a node's traffic log that cannot be read at position
// At, a position an earlier read gave (so a record's): a record damaged on
// disk. Skip, when above 0, is where its next segment begins, the way
// past it; without one, the damage is in the segment written now.
type DamagedError struct {
	At, Skip int64
	Msg      string // names the node
}

func (e *DamagedError) Error() string { return e.Msg }

// Source is where traffic is read from: each Read calls fn with the
// events that came since the last (fn's event is valid only during the
// call).
type Source interface {
	Read(ctx context.Context, fn func(*trafficlog.Event)) error
}

// NodeLogs reads the traffic logs of a Gateway's nodes over HTTP, each
// from where the last read of it ended. One goroutine uses it.
type NodeLogs struct {
	g    *Gateway
	logf func(string, ...any)
	// pos is where each node's log is read on from.
	pos []Position
	// missing names the nodes the last Read could not reach; logged
	// when each was last said to be unreachable.
	missing []string
	logged  map[string]time.Time
	// down holds, for each node in missing, when it was first found
	// unreadable, so that Read says when it reads again.
	down map[string]time.Time
}

// Logs returns a Source over g's nodes' logs, from their oldest records;
// logf says when retention deleted records before they were read.
func (g *Gateway) Logs(logf func(string, ...any)) *NodeLogs {
	pos := make([]Position, len(g.Nodes))
	for i := range pos {
		pos[i].Pos = -1
	}
	return &NodeLogs{g: g, logf: logf, pos: pos, logged: map[string]time.Time{}, down: map[string]time.Time{}}
}

// Missing names the nodes the last Read could not reach.
func (n *NodeLogs) Missing() []string { return n.missing }

// Read reads what every node's log gained since the last Read, merged
// by the events' times: feedback posted to one node for another node's
// prediction comes after that prediction, as it did, and is never held
// as an orphan while a long backlog of the first node is read (the
// Joiner forgets orphans past a bound). A node that cannot be reached,
// or refuses, is left for the next Read (Missing names it, and it is
// logged once a minute); Read fails when no node can be read. A node
// whose log deleted the next position goes on from its oldest record, as
// does one whose log started over.
func (n *NodeLogs) Read(ctx context.Context, fn func(*trafficlog.Event)) error {
	hc := n.g.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	n.missing = n.missing[:0]
	var errs []error
	cs := make([]*logCursor, len(n.g.Nodes))
	for i := range cs {
		c := &logCursor{i: i}
		cs[i] = c
		if err := n.advance(ctx, hc, c); err != nil {
			n.fail(c, err, &errs)
		}
	}
	for {
		var first *logCursor
		for _, c := range cs {
			if c.has && (first == nil || c.e.Time.Before(first.e.Time)) {
				first = c
			}
		}
		if first == nil {
			break
		}
		fn(&first.e)
		if err := n.advance(ctx, hc, first); err != nil {
			n.fail(first, err, &errs)
		}
	}
	for node, since := range n.down {
		if !slices.Contains(n.missing, node) {
			delete(n.down, node)
			if n.logged[node].Before(since) {
				continue // this spell's failure went unsaid (once a minute): so does its end
			}
			n.logf("trainer: the traffic log of %s reads again, after %s unreadable; the stages have every node's evidence again", node, time.Since(since).Round(time.Second))
		}
	}
	if len(n.missing) == len(n.g.Nodes) {
		return fmt.Errorf("cannot read any node's traffic log: %w", errors.Join(errs...))
	}
	return nil
}

// logCursor is where Read is in one node's log: the rest of an answer,
// and its first event decoded (has), which shares the answer's bytes.
type logCursor struct {
	i    int // the node's index
	body []byte
	// next and end are the answer's: where the node's log is read on from
	// once body is used up, and its end then.
	next Position
	end  int64
	e    trafficlog.Event
	has  bool
	// fetched is set once the cursor has read an answer.
	fetched bool
}

// advance decodes c's next event, reading the node's next answer when c
// used its last one up (its position moves on then) until the node's log
// has no more; c.has says whether there is one.
func (n *NodeLogs) advance(ctx context.Context, hc *http.Client, c *logCursor) error {
	c.has = false
	for len(c.body) == 0 {
		if c.fetched {
			// The answer is used up: the log is read on after it.
			n.pos[c.i] = c.next
			if c.next.Pos >= c.end {
				return nil // caught up
			}
		}
		from := n.pos[c.i].Pos
		a, err := n.answer(ctx, hc, c.i)
		if err != nil {
			return err
		}
		c.body, c.next, c.end, c.fetched = a.body, a.next, a.end, true
		if len(c.body) == 0 && c.next.Pos == from {
			n.pos[c.i] = c.next
			return nil // nothing new
		}
	}
	m, err := trafficlog.Decode(c.body, &c.e)
	if err != nil {
		c.body = nil
		return fmt.Errorf("the traffic log of %s: %w", n.g.Nodes[c.i], err)
	}
	c.body = c.body[m:]
	c.has = true
	return nil
}

// minMergedAnswer is the least a merged Read asks one node's answer to
// hold.
const minMergedAnswer = 1 << 20

// answer reads the next answer of node i from n.pos[i], going past what
// the node's log no longer holds, or holds damaged, as Read says. Read
// holds an answer of every node's at once: each asks for a share of
// maxTrafficAnswer (minMergedAnswer at least), so that they add up to
// what one answer held when the nodes were read one after another.
func (n *NodeLogs) answer(ctx context.Context, hc *http.Client, i int) (answer, error) {
	node := n.g.Nodes[i]
	maxBytes := max(maxTrafficAnswer/len(n.g.Nodes), minMergedAnswer)
	a, err := readAnswer(ctx, hc, node, n.g.Token, n.pos[i], maxBytes)
	oldest := Position{Log: a.next.Log, Pos: -1}
	var de *DamagedError
	var so *StartedOverError
	switch {
	case errors.As(err, &so):
		n.logf(logging.Warning+"trainer: %v; reading it from its oldest record", err)
		a, err = readAnswer(ctx, hc, node, n.g.Token, Position{Pos: -1}, maxBytes)
	case errors.As(err, &de) && de.Skip > de.At:
		n.logf(logging.Warning+"trainer: %v; skipping to position %d, where that log's next segment begins: the records between are lost to training", err, de.Skip)
		a, err = readAnswer(ctx, hc, node, n.g.Token, Position{Log: a.next.Log, Pos: de.Skip}, maxBytes)
	case errors.As(err, &de):
		// No way past it until the node starts another segment: left
		// for the next Read, not read again from the oldest record.
	case isStatus(err, http.StatusGone):
		// Retention deleted what was next: go on from the oldest.
		n.logf(logging.Warning+"trainer: %v; reading on from the oldest record", err)
		a, err = readAnswer(ctx, hc, node, n.g.Token, oldest, maxBytes)
	case isStatus(err, http.StatusBadRequest) && n.pos[i].Pos >= 0:
		// A position beyond the log's end: the log started over
		// (the node's data replaced or wiped) on a node that gives
		// no identity, or one whose segments were removed by hand.
		n.logf(logging.Warning+"trainer: %v; the log started over: reading it from its oldest record", err)
		a, err = readAnswer(ctx, hc, node, n.g.Token, oldest, maxBytes)
	}
	if err != nil {
		n.pos[i] = a.next
	}
	return a, err
}

// fail notes that node c.i could not be read on this Read.
func (n *NodeLogs) fail(c *logCursor, err error, errs *[]error) {
	c.has, c.body = false, nil
	node := n.g.Nodes[c.i]
	// Unreachable, or refusing now (its log turned off, say): left for
	// the next Read.
	n.missing = append(n.missing, node)
	if _, ok := n.down[node]; !ok {
		n.down[node] = time.Now()
	}
	*errs = append(*errs, err)
	if now := time.Now(); now.Sub(n.logged[node]) >= time.Minute {
		n.logged[node] = now
		n.logf(logging.Warning+"trainer: %v; going on with the other nodes (no stage passes until it is back)", err)
	}
}
