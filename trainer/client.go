package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	base = strings.TrimRight(base, "/")
	at := from
	var e trafficlog.Event
	for {
		q := url.Values{"format": {"binary"}, "max_bytes": {strconv.Itoa(maxTrafficAnswer)}}
		if at.Pos >= 0 {
			q.Set("from", strconv.FormatInt(at.Pos, 10))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/traffic?"+q.Encode(), nil)
		if err != nil {
			return at, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return at, &NodeError{Node: base, Err: err}
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 2*maxTrafficAnswer))
		resp.Body.Close()
		if err != nil {
			return at, fmt.Errorf("cannot read the traffic log of %s: %w", base, err)
		}
		if id := resp.Header.Get("X-Traffic-Log"); id != "" {
			if at.Log != "" && id != at.Log && at.Pos >= 0 {
				return at, &StartedOverError{Node: base, Was: at.Log, Now: id}
			}
			at.Log = id
		}
		if resp.StatusCode != http.StatusOK {
			msg := fmt.Sprintf("the traffic log of %s: HTTP %d: %s", base, resp.StatusCode, oip.ErrorMessage(body))
			if pos, err := strconv.ParseInt(resp.Header.Get("X-Traffic-Damaged"), 10, 64); err == nil {
				de := &DamagedError{At: pos, Msg: msg}
				de.Skip, _ = strconv.ParseInt(resp.Header.Get("X-Traffic-Skip"), 10, 64)
				return at, de
			}
			return at, &HTTPError{Code: resp.StatusCode, Msg: msg}
		}
		next, err1 := strconv.ParseInt(resp.Header.Get("X-Traffic-Next"), 10, 64)
		end, err2 := strconv.ParseInt(resp.Header.Get("X-Traffic-End"), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return at, fmt.Errorf("the traffic log of %s: the answer lacks its positions (is it an infergate node?): %w", base, err)
		}
		for len(body) > 0 {
			n, err := trafficlog.Decode(body, &e)
			if err != nil {
				return at, fmt.Errorf("the traffic log of %s: %w", base, err)
			}
			fn(&e)
			body = body[n:]
		}
		at.Pos = next
		if next >= end {
			return at, nil
		}
	}
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
}

// Logs returns a Source over g's nodes' logs, from their oldest records;
// logf says when retention deleted records before they were read.
func (g *Gateway) Logs(logf func(string, ...any)) *NodeLogs {
	pos := make([]Position, len(g.Nodes))
	for i := range pos {
		pos[i].Pos = -1
	}
	return &NodeLogs{g: g, logf: logf, pos: pos, logged: map[string]time.Time{}}
}

// Missing names the nodes the last Read could not reach.
func (n *NodeLogs) Missing() []string { return n.missing }

// Read reads what every node's log gained since the last Read. A node
// that cannot be reached, or refuses, is left for the next Read (Missing
// names it, and it is logged once a minute); Read fails when no node can
// be read. A node whose log deleted the next position goes on from its
// oldest record, as does one whose log started over.
func (n *NodeLogs) Read(ctx context.Context, fn func(*trafficlog.Event)) error {
	hc := n.g.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	n.missing = n.missing[:0]
	var errs []error
	for i, node := range n.g.Nodes {
		next, err := ReadTraffic(ctx, hc, node, n.g.Token, n.pos[i], fn)
		oldest := Position{Log: next.Log, Pos: -1}
		var de *DamagedError
		var so *StartedOverError
		switch {
		case errors.As(err, &so):
			n.logf("trainer: %v; reading it from its oldest record", err)
			next, err = ReadTraffic(ctx, hc, node, n.g.Token, Position{Pos: -1}, fn)
		case errors.As(err, &de) && de.Skip > de.At:
			n.logf("trainer: %v; skipping to position %d, where that log's next segment begins: the records between are lost to training", err, de.Skip)
			next, err = ReadTraffic(ctx, hc, node, n.g.Token, Position{Log: next.Log, Pos: de.Skip}, fn)
		case errors.As(err, &de):
			// No way past it until the node starts another segment: left
			// for the next Read, not read again from the oldest record.
		case isStatus(err, http.StatusGone):
			// Retention deleted what was next: go on from the oldest.
			n.logf("trainer: %v; reading on from the oldest record", err)
			next, err = ReadTraffic(ctx, hc, node, n.g.Token, oldest, fn)
		case isStatus(err, http.StatusBadRequest) && n.pos[i].Pos >= 0 && next.Pos == n.pos[i].Pos:
			// A position beyond the log's end: the log started over
			// (the node's data replaced or wiped) on a node that gives
			// no identity, or one whose segments were removed by hand.
			n.logf("trainer: %v; the log started over: reading it from its oldest record", err)
			next, err = ReadTraffic(ctx, hc, node, n.g.Token, oldest, fn)
		}
		n.pos[i] = next
		if err != nil {
			// Unreachable, or refusing now (its log turned off, say):
			// left for the next Read.
			n.missing = append(n.missing, node)
			errs = append(errs, err)
			if now := time.Now(); now.Sub(n.logged[node]) >= time.Minute {
				n.logged[node] = now
				n.logf("trainer: %v; going on with the other nodes (no stage passes until it is back)", err)
			}
		}
	}
	if len(n.missing) == len(n.g.Nodes) {
		return fmt.Errorf("cannot read any node's traffic log: %w", errors.Join(errs...))
	}
	return nil
}
