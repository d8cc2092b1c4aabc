package gateway_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry/blobs"
)

// A backup that stops on a blob damaged on this node's disk lost what it
// was to hold: its line is an ERROR. One that stops because its client
// went is a WARNING (TestStalledBackupClientFreesTheSlot's).
func TestBackupDamagedBlobLogged(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startServer(t, serverOptions{cfg: cfg, files: map[string][]byte{"ctr/1": ctrONNX()}})
	var store *blobs.Store
	attachNode(t, s, adminToken, func(cc *cluster.Config) {
		cc.RegisterLocal = true
		cc.Check = engineCheck
		store = cc.Blobs
	})
	waitCtrRegistered(t, s)
	var hexes []string
	testenv.CheckFor(t, 10*time.Second, func() error {
		var err error
		if hexes, err = store.List(); err != nil || len(hexes) != 1 {
			return fmt.Errorf("blobs %v, %v; want ctr's", hexes, err)
		}
		return nil
	})
	path := store.Path(hexes[0])
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff // rot: the same size, other bytes
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s.admin(t, "GET", "/v1/cluster/backup", nil) // cut short
	testenv.CheckFor(t, 5*time.Second, func() error {
		for _, l := range strings.Split(s.log.String(), "\n") {
			if strings.Contains(l, "admin: backup at raft index") && strings.Contains(l, "stopped after") {
				if !strings.HasPrefix(l, "ERROR: ") || !strings.Contains(l, "damaged on disk") {
					t.Fatalf("the backup's line: %q; want an ERROR naming the damage", l)
				}
				return nil
			}
		}
		return fmt.Errorf("no line of the backup that stopped")
	})
}
