package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// A member whose stored blob rotted serves other bytes than the digest it
// is asked for. The fetching node refuses them and takes the blob from
// another member, and its log names the member that served other bytes:
// nothing else tells an operator that one holds a damaged copy.
func TestFetchNamesThePeerThatServedOtherBytes(t *testing.T) {
	c := newTestCluster(t, 2)
	leader := c.waitLeader(c.nodes...)
	node := c.follower(leader)
	log := c.logs[slices.Index(c.nodes, node)]
	good := []byte("the model bytes as uploaded")
	sum := sha256.Sum256(good)
	hexSum := hex.EncodeToString(sum[:])
	serve := func(body []byte) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/blobs/sha256:"+hexSum {
				http.NotFound(w, r)
				return
			}
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	rotted := slices.Clone(good)
	rotted[3] ^= 1
	for _, m := range []fsm.Member{
		{ID: "a-rotted", RaftAddr: "10.0.0.1:1", HTTPAddr: serve(rotted)},
		{ID: "b-sound", RaftAddr: "10.0.0.2:1", HTTPAddr: serve(good)},
	} {
		if _, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &m}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.ApplyLocal(fsm.Command{
		Op: fsm.OpRegisterVersion, Model: "m", SHA256: hexSum, Size: int64(len(good)),
		Created: time.Unix(1, 0).UTC(), Origin: "a-rotted",
	}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := node.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("status %+v; want ready from the sound member", s)
		}
		return nil
	})
	if got := log.count("from b-sound", "a-rotted", "sha256"); got != 1 {
		t.Fatalf("lines naming the fetch from b-sound and a-rotted's other bytes: got %d; want 1", got)
	}
}
