package main

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// Review: README ("A damaged raft log": "a disk that lost pages") and
// c63285b promise that serve refuses a damaged raft.db and says how to
// rebuild the node. Only damage bbolt sees when it opens the file (the
// meta pages, which TestDamagedRaftLogRebuiltFromGroup overwrites) gets
// that message; a lost B+tree page makes serve panic in raft-boltdb
// ("assertion failed: Page expected to be: 2, but self identifies as 0")
// with a goroutine dump instead.
func TestLostDataPageGetsTheRebuildMessage(t *testing.T) {
	data, models, raftAddr := t.TempDir(), demoRepo(t), testenv.FreeAddr(t)
	n := startNode(t, data, models, raftAddr, "")
	testenv.CheckFor(t, 20*time.Second, func() error {
		_, _, err := n.model(t, "ctr", false)
		return err
	})
	n.kill(t)
	db := filepath.Join(data, "raft", "raft.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	lost := 0
	for p := 2; (p+1)*pageSize <= len(b); p++ { // the meta pages (0, 1) stay
		if flags := binary.LittleEndian.Uint16(b[p*pageSize+8:]); flags == 0x02 { // a leaf page
			clear(b[p*pageSize : (p+1)*pageSize])
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("no leaf page found")
	}
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "serve", "--http", "127.0.0.1:0", "--data", data, "--models", models,
		"--cluster", raftAddr, "--admin-token", clusterToken, "--ort-lib", testenv.ORTLib(t))
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	var out []byte
	select {
	case out = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		out = <-done
	}
	if s := string(out); strings.Contains(s, "panic:") || !strings.Contains(s, "is damaged") {
		if i := strings.Index(s, "panic:"); i >= 0 {
			s = s[i:min(len(s), i+400)]
		}
		t.Fatalf("serve on a raft.db that lost %d page(s): want it refused with the rebuild instructions; got:\n%s", lost, s)
	}
}
