package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// TestBackupFetchStopsWithItsContext has a backup fetch a blob missing on
// the node from a member that sends part of it and stalls, and cancels
// the backup's context meanwhile: the backup returns at once with the
// context's error, leaves no partial blob in the store, and gives its slot
// back, so that the next backup (the member now sending the whole blob)
// is taken.
func TestBackupFetchStopsWithItsContext(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	content := bytes.Repeat([]byte("model bytes "), 40<<10)
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])

	started := make(chan struct{}, 1)
	release := make(chan struct{})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/blobs/sha256:"+h {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		if calls.Add(1) > 1 {
			w.Write(content)
			return
		}
		w.Write(content[:64<<10])
		w.(http.Flusher).Flush()
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for the handler
	peer := fsm.Member{ID: "peer", RaftAddr: "10.0.0.1:1", HTTPAddr: srv.URL}
	mustApply(t, n, fsm.Command{Op: fsm.OpSetMember, Member: &peer})

	if _, err := c.register(n, "m", string(content)); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("m 1: %+v", s)
		}
		return nil
	})
	if err := n.cfg.Blobs.Remove(h); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		b, err := n.Backup(ctx, "test")
		if err == nil {
			b.Close()
		}
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the backup did not fetch the missing blob from the peer")
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Backup still fetching 5s after its context was canceled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want an error wrapping context.Canceled", err)
	}
	if n.cfg.Blobs.Has(h) {
		t.Fatalf("blob sha256:%s is in the store after a fetch cut short", h)
	}
	tmp, err := os.ReadDir(filepath.Join(n.cfg.Blobs.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) != 0 {
		t.Fatalf("the store's temp files after a fetch cut short: got %d (%s); want none", len(tmp), tmp[0].Name())
	}

	// The slot is free again, and the peer now sends the whole blob.
	_, _, got := readArchive(t, takeBackup(t, n))
	if !bytes.Equal(got[h], content) {
		t.Fatalf("second backup: blob sha256:%s holds %d bytes; want %d", h, len(got[h]), len(content))
	}
}
