package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"

	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/internal/testcerts"
	"github.com/infergate/infergate/internal/testenv"
)

// The raft stream layer takes members of the CA and no one else.
func TestTLSStreamLayer(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	other := testcerts.NewCA(t, dir, "other")
	layerOf := func(ca *testcerts.CA, name string) *TLS {
		c, k := ca.Issue(t, name, time.Time{}, "127.0.0.1")
		r, err := certs.NewReloader(c, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &TLS{Cert: r, CAs: ca.Pool}
	}
	srv, err := newTLSStreamLayer("127.0.0.1:0", nil, layerOf(ca, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	got := helloServer(srv)
	addr := raft.ServerAddress(srv.Listener.Addr().String())
	send := func(l *TLS) error {
		cl := &tlsStreamLayer{client: l.clientConfig}
		c, err := cl.Dial(addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	}
	if err := send(layerOf(ca, "b")); err != nil {
		t.Fatalf("a member: %s", err)
	}
	if g := <-got; g != "hello" {
		t.Fatalf("the server read %q; want hello", g)
	}
	// A stranger fails its own verification of the server, so it never
	// sends; one that trusted the server would be refused by it.
	if err := send(layerOf(other, "c")); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("a stranger: %v; want an unknown-authority error", err)
	}
	trusting := layerOf(other, "d")
	trusting.CAs = ca.Pool
	send(trusting) // TLS 1.3: the server's refusal comes after the client's write
	if g := <-got; !strings.Contains(g, "error") {
		t.Fatalf("the server read %q from a client of another CA; want an error", g)
	}
	// Plain TCP: refused at the handshake.
	c, err := net.Dial("tcp", string(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	if g := <-got; !strings.Contains(g, "error") {
		t.Fatalf("the server read %q from plain TCP; want an error", g)
	}
}

// tlsOf returns a TLS of ca for a certificate of 127.0.0.1 with ekus.
func tlsOf(t *testing.T, ca *testcerts.CA, name string, ekus ...x509.ExtKeyUsage) *TLS {
	t.Helper()
	c, k := ca.IssueFor(t, name, time.Time{}, ekus, "127.0.0.1")
	r, err := certs.NewReloader(c, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &TLS{Cert: r, CAs: ca.Pool}
}

// The leader checks a joining node's raft address with reachable before
// it makes it a member. A raft layer that refuses this node's
// certificate (here a server-only one, which cannot authenticate a
// client) is not reachable: admitted, it would be a voter no raft call
// reaches, and a one-voter group would lose its quorum. In TLS 1.3 the
// server judges the client's certificate after the client's side of the
// handshake is done, so a plain handshake passed.
func TestReachableSeesARefusedCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, t.TempDir(), "ca")
	serverOnly := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	layer, err := newTLSStreamLayer("127.0.0.1:0", nil, tlsOf(t, ca, "joiner", serverOnly...))
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	go func() {
		for {
			c, err := layer.Accept()
			if err != nil {
				return
			}
			go func() { // what raft's handleConn does: read commands
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	addr := layer.Listener.Addr().String()
	refused := &Node{cfg: Config{TLS: tlsOf(t, ca, "leader", serverOnly...)}}
	if err := refused.reachable(addr); err == nil {
		t.Fatalf("reachable: nil for a raft layer that refuses the node's certificate")
	}
	taken := &Node{cfg: Config{TLS: tlsOf(t, ca, "member", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)}}
	if err := taken.reachable(addr); err != nil {
		t.Fatalf("reachable with a certificate the layer takes: %v", err)
	}
}

// In a cluster over TLS the peer client calls https whatever address the
// raft state holds (members keep their http:// ones from before the move
// to TLS until they announce their new one): the admin token never goes
// out in the clear.
func TestPeerClientNeverSendsTheTokenInTheClear(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer plain.Close()
	ca := testcerts.NewCA(t, t.TempDir(), "ca")
	p := newPeerClient("s3cret-admin-token", tlsOf(t, ca, "node", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := p.apply(ctx, plain.URL, fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: "n2", RaftAddr: "127.0.0.1:1", HTTPAddr: "https://127.0.0.1:2"}})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 0 {
		t.Fatalf("the peer client of a TLS cluster sent %q to %s over plain HTTP", seen, plain.URL)
	}
	if err == nil || !errors.Is(err, errUnreached) {
		t.Fatalf("a call over https to a plain HTTP server: %v; want errUnreached (nothing was sent)", err)
	}
}

// A peer that takes the connection but stalls the handshake never saw
// the request: the call is unreached, not of unknown outcome.
func TestPeerHandshakeTimeoutIsUnreached(t *testing.T) {
	addr := testenv.SilentAddr(t)
	ca := testcerts.NewCA(t, t.TempDir(), "ca")
	p := newPeerClient("tok", tlsOf(t, ca, "node", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth))
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	_, err := p.apply(ctx, "https://"+addr, fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: "n2"}})
	if !errors.Is(err, errUnreached) {
		t.Fatalf("a call whose TLS handshake timed out: %v; want errUnreached", err)
	}
}

// A node that speaks raft over TLS cannot join a group that speaks it
// over plain TCP, nor the other way round: a plain TCP dial passes a TLS
// port, and the node would be a voter nobody reaches (a one-voter group
// lost its quorum for good).
func TestJoinRefusesTheOtherRaft(t *testing.T) {
	c := newTestCluster(t, 1)
	leader := c.waitLeader(c.nodes...)
	err := leader.JoinLocal(fsm.Member{ID: "tls-node", RaftAddr: "127.0.0.9:7000", HTTPAddr: "https://127.0.0.9:8080", RaftTLS: true})
	if !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "speaks raft over mutual TLS (--cluster-ca), this cluster over plain TCP") {
		t.Fatalf("JoinLocal of a TLS node into a plain group: %v", err)
	}
	if f := leader.raft.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) != 1 {
		t.Fatalf("the configuration changed: %v %+v", f.Error(), f.Configuration())
	}
}

// helloServer serves l as raft would, reporting what each connection
// sent: "hello", or the error that ended it.
func helloServer(l *tlsStreamLayer) <-chan string {
	got := make(chan string, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 5)
				if _, err := io.ReadFull(c, b); err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- string(b)
			}()
		}
	}()
	return got
}

// sendHello dials addr through l and says hello.
func sendHello(l *tlsStreamLayer, addr string) error {
	c, err := l.Dial(raft.ServerAddress(addr), 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte("hello"))
	return err
}

// A CA that joins the cluster's pool is taken by the next handshakes on
// every path, and refused again once it leaves: raft's layer as a server
// (the dialer's certificate) and as a client (the server's), and the
// peer client's HTTPS, whose transport was made before the change.
func TestTLSFollowsTheCAs(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	next := testcerts.NewCA(t, dir, "next")
	both := x509.NewCertPool()
	for _, f := range []string{ca.File, next.File} {
		b, err := os.ReadFile(f)
		if err != nil || !both.AppendCertsFromPEM(b) {
			t.Fatalf("cannot read %s: %v", f, err)
		}
	}
	var pool atomic.Pointer[x509.CertPool]
	pool.Store(ca.Pool())
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	member := tlsOf(t, ca, "member", usages...)
	member.CAs = pool.Load
	newcomer := tlsOf(t, next, "newcomer", usages...)
	newcomer.CAs = func() *x509.CertPool { return both }

	memberLayer, err := newTLSStreamLayer("127.0.0.1:0", nil, member)
	if err != nil {
		t.Fatal(err)
	}
	defer memberLayer.Close()
	toMember := helloServer(memberLayer)
	newcomerLayer, err := newTLSStreamLayer("127.0.0.1:0", nil, newcomer)
	if err != nil {
		t.Fatal(err)
	}
	defer newcomerLayer.Close()
	toNewcomer := helloServer(newcomerLayer)
	https := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"index":7}`))
	}))
	nc, nk := next.Issue(t, "newcomer-https", time.Time{}, "127.0.0.1")
	https.TLS = &tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, nc, nk)}}
	https.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	https.StartTLS()
	defer https.Close()
	peers := newPeerClient("tok", member)

	// check says how each path fares: nil when it takes the newcomer.
	check := func() (raftIn, raftOut, peer error) {
		sendHello(newcomerLayer, memberLayer.Listener.Addr().String()) // TLS 1.3: the member's verdict comes at its read
		if g := <-toMember; g != "hello" {
			raftIn = errors.New(g)
		}
		raftOut = sendHello(memberLayer, newcomerLayer.Listener.Addr().String())
		if g := <-toNewcomer; g != "hello" && raftOut == nil { // the newcomer reports every connection
			raftOut = errors.New(g)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if i, err := peers.readIndex(ctx, https.URL); err != nil || i != 7 {
			peer = fmt.Errorf("index %d, error %w", i, err)
		}
		return raftIn, raftOut, peer
	}
	refused := func(when string) {
		t.Helper()
		raftIn, raftOut, peer := check()
		if raftIn == nil || raftOut == nil || !strings.Contains(raftOut.Error(), "unknown authority") || !errors.Is(peer, errUnreached) || !strings.Contains(peer.Error(), "unknown authority") {
			t.Fatalf("%s: raft from the newcomer %v, raft to it %v, the peer client %v; want all refused (unknown authority, unreached)", when, raftIn, raftOut, peer)
		}
	}
	refused("before its CA joined")
	pool.Store(both)
	if raftIn, raftOut, peer := check(); raftIn != nil || raftOut != nil || peer != nil {
		t.Fatalf("after its CA joined: raft from the newcomer %v, raft to it %v, the peer client %v; want all taken", raftIn, raftOut, peer)
	}
	pool.Store(ca.Pool())
	peers.http.CloseIdleConnections() // an open connection keeps what it verified
	refused("after its CA left")
}
