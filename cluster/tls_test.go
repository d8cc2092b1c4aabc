package cluster

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/internal/testcerts"
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
		return &TLS{Cert: r, CA: ca.Pool()}
	}
	srv, err := newTLSStreamLayer("127.0.0.1:0", nil, layerOf(ca, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	got := make(chan string, 8)
	go func() {
		for {
			c, err := srv.Accept()
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
	addr := raft.ServerAddress(srv.Listener.Addr().String())
	send := func(l *TLS) error {
		cl := &tlsStreamLayer{client: l.clientConfig()}
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
	trusting.CA = ca.Pool()
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
