package trainer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// A POST whose request reached a node is not sent to the next one when
// its answer is lost: an upload registers a new version each time, so the
// cluster would get the candidate twice. A node that could not be dialled
// passes the call on, as before, and so do the calls that set a state.
func TestWriteSentOnceWhenItsAnswerIsLost(t *testing.T) {
	var first, second atomic.Int32
	// lossy reads the whole request, then drops the connection unanswered,
	// as a node killed once the leader committed the upload.
	lossy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Add(1)
		io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	defer lossy.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"version": 7}`)
	}))
	defer good.Close()
	// down is an address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()

	ctx := context.Background()
	g := &Gateway{Nodes: []string{lossy.URL, good.URL}}
	_, err = g.Upload(ctx, "ctr", []byte("onnx"))
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != lossy.URL {
		t.Fatalf("Upload through a node that lost its answer: %v; want a *NodeError of %s", err, lossy.URL)
	}
	if n := second.Load(); n != 0 {
		t.Fatalf("the next node got the upload %d times; want 0", n)
	}

	g = &Gateway{Nodes: []string{down, good.URL}}
	if v, err := g.Upload(ctx, "ctr", []byte("onnx")); err != nil || v != 7 {
		t.Fatalf("Upload past a node that is down = %d, %v; want 7, nil", v, err)
	}

	// Nor is one whose TLS handshake failed (a certificate not trusted).
	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer untrusted.Close()
	second.Store(0)
	g = &Gateway{Nodes: []string{untrusted.URL, good.URL}}
	if v, err := g.Upload(ctx, "ctr", []byte("onnx")); err != nil || v != 7 || second.Load() != 1 {
		t.Fatalf("Upload past a node whose certificate is not trusted = %d, %v; want 7, nil", v, err)
	}

	// Setting a state again is harmless: it goes on to the next node.
	first.Store(0)
	second.Store(0)
	g = &Gateway{Nodes: []string{lossy.URL, good.URL}}
	if err := g.SetShadow(ctx, "ctr", 2, 5); err != nil {
		t.Fatalf("SetShadow past a node that lost its answer: %v", err)
	}
	if f, s := first.Load(), second.Load(); f != 1 || s != 1 {
		t.Fatalf("SetShadow reached the nodes %d and %d times; want 1 and 1", f, s)
	}
}

// The trainer reads a model's state as the leader has it (a stale read
// would miss a person's rollback, which its next write would undo), and a
// node that cannot answer such a read now (503: no leader within its
// reach) passes it to the next.
func TestModelReadIsConsistent(t *testing.T) {
	var queries []string
	var mu sync.Mutex
	node := func(code int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			queries = append(queries, r.URL.Path+"?"+r.URL.RawQuery)
			mu.Unlock()
			if code != 200 {
				w.WriteHeader(code)
				io.WriteString(w, `{"error":"no leader"}`)
				return
			}
			io.WriteString(w, `{"production": 3}`)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	g := &Gateway{Nodes: []string{node(503).URL, node(200).URL}}
	m, err := g.Model(t.Context(), "ctr")
	if err != nil || m.Production != 3 {
		t.Fatalf("Model = %+v, %v; want production 3 from the second node", m, err)
	}
	if want := "/v1/models/ctr?consistent=1"; len(queries) != 2 || queries[0] != want || queries[1] != want {
		t.Fatalf("requests %q; want %s to each node", queries, want)
	}
}
