package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/oip"
)

// Headers of the peer protocol.
const (
	// HeaderForwarded marks a request one node forwards to the leader:
	// the leader applies it itself or answers ErrNotLeader, and never
	// forwards it again.
	HeaderForwarded = "X-Infergate-Forwarded"
	// HeaderFresh is on every join request of this release: "1" from a
	// node whose raft state is empty (fsm.Member.Fresh), the only way a
	// node a recovery dropped is taken in again, else "0". A join
	// without it comes from an earlier release.
	HeaderFresh = "X-Infergate-Raft-Fresh"
	// HeaderErrorKind tells the forwarding node which cluster error a 503
	// is: "not-leader" (retry with the new leader), "no-leader" or
	// "unknown-outcome". On a 409 it tells a client a refusal that ends by
	// itself from one a person must lift: KindStandsIn.
	HeaderErrorKind = "X-Infergate-Error-Kind"
	// HeaderProtocol is on every join request of a release that knows
	// fsm.OpRemoveModel: its Protocol. A join without it comes from an
	// earlier release.
	HeaderProtocol = "X-Infergate-Protocol"
)

// Protocol is what this release's node understands of the replicated
// state beyond what the earliest release did; it says so in
// LocalStatus.Protocol and HeaderProtocol, and earlier releases say
// nothing (0). 1: it applies fsm.OpRemoveModel. A leader applies an op
// that earlier releases refuse only once every member reports at least
// the protocol that knows it: a member that refused a committed entry
// would go on with a state of its own.
const Protocol = 1

// ParseProtocol reads a HeaderProtocol value; anything but a positive
// integer, an absent header included, is 0: an earlier release.
func ParseProtocol(h string) int {
	n, err := strconv.Atoi(h)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// KindStandsIn is the HeaderErrorKind of a retirement refused because a
// node where production failed answers unversioned requests with the
// version: once production is ready there, the retirement goes through.
const KindStandsIn = "stands-in"

// ErrorKind returns the HeaderErrorKind value for err, or "".
func ErrorKind(err error) string {
	switch {
	case errors.Is(err, ErrNotLeader):
		return "not-leader"
	case errors.Is(err, ErrNoLeader):
		return "no-leader"
	case errors.Is(err, ErrUnknownOutcome):
		return "unknown-outcome"
	case errors.Is(err, ErrDropped):
		return "dropped"
	}
	return ""
}

// peerClient calls other members' admin API.
type peerClient struct {
	token string
	http  *http.Client
	// tls is set when the cluster runs over TLS: every call then goes
	// over https (see url).
	tls bool
}

// newPeerClient returns the client of a node presenting token, and with
// t, calling peers over verified TLS.
func newPeerClient(token string, t *TLS) *peerClient {
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	// Forwarded writes and joins are small; blob pulls stream and set
	// their own deadline through the context.
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	if t != nil {
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return t.dialPeer(ctx, dialer, network, addr)
		}
	}
	return &peerClient{
		tls:   t != nil,
		token: token,
		http: &http.Client{
			// A peer never redirects; following one would send the
			// token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     tr,
		},
	}
}

// url is path at a member's base URL. In a cluster over TLS it is https
// whatever the base says: the raft state keeps the http:// addresses of
// members from before the cluster moved to TLS until each announces its
// new one, and the token must never go out in the clear.
func (p *peerClient) url(base, path string) string {
	base = strings.TrimRight(base, "/")
	if rest, ok := strings.CutPrefix(base, "http://"); ok && p.tls {
		base = "https://" + rest
	}
	return base + path
}

// do forwards one request to the leader (marked HeaderForwarded) and
// decodes a JSON answer into out (when not nil).
func (p *peerClient) do(ctx context.Context, method, base, path string, body any, out any) error {
	return p.send(ctx, method, base, path, body, out, true)
}

// joinHeader is the header pair that says whether a joining member is
// fresh.
func joinHeader(m fsm.Member) []string {
	fresh := "0"
	if m.Fresh {
		fresh = "1"
	}
	return []string{HeaderFresh, fresh, HeaderProtocol, strconv.Itoa(m.Protocol)}
}

// send is do, with the request marked forwarded or not: a node's own call
// to a member that may not lead (its join) is not, so that the member
// forwards it to the leader instead of refusing it as no leader.
func (p *peerClient) send(ctx context.Context, method, base, path string, body, out any, forwarded bool, header ...string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.url(base, path), rd)
	if err != nil {
		return err
	}
	if forwarded {
		req.Header.Set(HeaderForwarded, "1")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	p.authorize(req)
	resp, err := p.http.Do(req)
	if err != nil {
		return peerError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s: reading the answer: %w", ErrUnknownOutcome, method, req.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		return statusError(resp, b)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: bad answer %q: %w", method, req.URL, b, err)
		}
	}
	return nil
}

func (p *peerClient) authorize(req *http.Request) {
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
}

// peerError classifies a failed call: errUnreached when it failed before
// the peer could act (a refused connection), else ErrUnknownOutcome, since
// the peer may have acted before the connection broke or the time ran out.
func peerError(err error) error {
	var op *net.OpError
	var verify *tls.CertificateVerificationError
	// A handshake that failed (this node refused the peer's certificate,
	// or the peer this node's: a "remote error" alert) ends before the
	// peer reads the request.
	// Nor did one that timed out, or met a server speaking plain HTTP
	// (net/http says so in an error of its own).
	if (errors.As(err, &op) && (op.Op == "dial" || op.Op == "remote error")) || errors.As(err, &verify) ||
		errors.Is(err, errPeerHandshakeTimeout) || errors.Is(err, errPeerHandshake) || errors.Is(err, http.ErrSchemeMismatch) {
		return fmt.Errorf("%w: %w", errUnreached, err)
	}
	return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
}

// statusError turns a peer's error answer back into this package's and
// fsm's sentinel errors, keeping the peer's message.
func statusError(resp *http.Response, body []byte) error {
	msg := oip.ErrorMessage(body)
	var kind error
	switch resp.StatusCode {
	case http.StatusBadRequest:
		kind = fsm.ErrInvalid
	case http.StatusNotFound:
		kind = fsm.ErrNotFound
	case http.StatusConflict:
		kind = fsm.ErrConflict
		if resp.Header.Get(HeaderErrorKind) == "dropped" {
			kind = ErrDropped
		}
	case http.StatusUnauthorized, http.StatusForbidden:
		kind = ErrUnauthorized
	case http.StatusServiceUnavailable:
		switch resp.Header.Get(HeaderErrorKind) {
		case "not-leader":
			kind = ErrNotLeader
		case "no-leader":
			kind = ErrNoLeader
		default:
			// "unknown-outcome", or a 503 that says nothing: it may
			// have been applied.
			kind = ErrUnknownOutcome
		}
	default:
		return fmt.Errorf("peer %s answered %d: %s", resp.Request.URL.Host, resp.StatusCode, msg)
	}
	if kind == ErrDropped {
		// The peer's message says it all, ErrDropped's text included.
		return &remoteError{kind: kind, msg: fmt.Sprintf("%s (from %s)", msg, resp.Request.URL.Host)}
	}
	return fmt.Errorf("%w (from %s: %s)", kind, resp.Request.URL.Host, msg)
}

// remoteError is a peer's error answer whose message already says what
// kind wraps.
type remoteError struct {
	kind error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func (p *peerClient) apply(ctx context.Context, leader string, c fsm.Command) (*fsm.Result, error) {
	var res fsm.Result
	if err := p.do(ctx, http.MethodPost, leader, "/v1/cluster/apply", c, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (p *peerClient) readIndex(ctx context.Context, leader string) (uint64, error) {
	var out struct {
		Index uint64 `json:"index"`
	}
	err := p.do(ctx, http.MethodGet, leader, "/v1/cluster/read-index", nil, &out)
	return out.Index, err
}

// join forwards member m's join to the leader at base.
func (p *peerClient) join(ctx context.Context, base string, m fsm.Member) error {
	return p.send(ctx, http.MethodPost, base, "/v1/cluster/join", m, nil, true, joinHeader(m)...)
}

// askJoin asks the member at base, which may not lead, to have m joined:
// it forwards the join to the leader.
func (p *peerClient) askJoin(ctx context.Context, base string, m fsm.Member) error {
	return p.send(ctx, http.MethodPost, base, "/v1/cluster/join", m, nil, false, joinHeader(m)...)
}

func (p *peerClient) remove(ctx context.Context, leader, id string) error {
	return p.do(ctx, http.MethodDelete, leader, "/v1/cluster/members/"+url.PathEscape(id), nil, nil)
}

// localStatus asks a member which versions it has ready (GET
// /v1/local/models).
func (p *peerClient) localStatus(ctx context.Context, base string) (*LocalStatus, error) {
	var out LocalStatus
	if err := p.do(ctx, http.MethodGet, base, "/v1/local/models", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// openBlob starts a blob download from a peer; the caller closes the body.
func (p *peerClient) openBlob(ctx context.Context, base, hex string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url(base, "/v1/blobs/sha256:"+hex), nil)
	if err != nil {
		return nil, 0, err
	}
	p.authorize(req)
	// A pull changes nothing on the peer: its errors are not a write's
	// (peerError, statusError), whose outcome may be unknown.
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, 0, err // net/http names the URL
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			return nil, 0, fmt.Errorf("peer %s is unavailable (HTTP 503): %s", resp.Request.URL.Host, oip.ErrorMessage(b))
		}
		return nil, 0, statusError(resp, b)
	}
	return resp.Body, resp.ContentLength, nil
}
