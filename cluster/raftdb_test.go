package cluster

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// A raft.db page whose bytes are garbage can name a page id past the end
// of the file, and bbolt then reads outside its mapping: a fault, which
// recover alone never sees. checkRaftDB must still answer errDamaged (the
// rebuild message). It runs in a subprocess, so that a fault that gets
// through kills that process, not the tests.
func TestGarbagePageIDGetsTheRebuildMessage(t *testing.T) {
	if p := os.Getenv("INFERGATE_TEST_RAFTDB"); p != "" {
		err := checkRaftDB(p)
		os.Stdout.WriteString("checkRaftDB: " + errString(err) + "\n")
		return
	}
	path := filepath.Join(t.TempDir(), "raft.db")
	store, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 2000; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(strings.Repeat("x", 200))})
	}
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	store.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	hit := false
	for p := 2; (p+1)*pageSize <= len(b); p++ {
		off := p * pageSize
		// A branch page (flags 0x01) with elements: garbage in the first
		// element's child page id (header 16 bytes; element: pos, ksize
		// uint32, pgid uint64).
		if binary.LittleEndian.Uint16(b[off+8:]) == 0x01 && binary.LittleEndian.Uint16(b[off+10:]) > 0 {
			binary.LittleEndian.PutUint64(b[off+16+8:], 0x10000000) // 1 TiB into the mmap: past the file, under bbolt's maxMapSize
			hit = true
			break
		}
	}
	if !hit {
		t.Fatal("no branch page found")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGarbagePageIDGetsTheRebuildMessage$")
	cmd.Env = append(os.Environ(), "INFERGATE_TEST_RAFTDB="+path)
	out, _ := cmd.CombinedOutput()
	s := string(out)
	if !strings.Contains(s, "checkRaftDB: damaged") {
		if i := strings.Index(s, "fatal error"); i >= 0 {
			s = s[i:min(len(s), i+300)]
		} else if i := strings.Index(s, "unexpected fault"); i >= 0 {
			s = s[i:min(len(s), i+300)]
		}
		t.Fatalf("checkRaftDB on a raft.db with a garbage page id: want errDamaged (the rebuild message); the process got:\n%s", s)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	if errors.Is(err, errDamaged) {
		return "damaged: " + err.Error()
	}
	return err.Error()
}
