package cluster

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// A joiner whose process restarts before it has loaded the cluster's
// models (a crash, an OOM kill, a rollout) finds raft state in its data
// directory, and served.json lists nothing to wait for: it must settle
// all the same, not report ready while its requests would get 404.
func TestJoinerRestartedBeforeSettledSettlesAgain(t *testing.T) {
	api0 := &adminStub{}
	release := make(chan struct{})
	srv0 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/blobs/") {
			// A large model on a slow link: the pull takes a while.
			select {
			case <-r.Context().Done():
			case <-release:
			}
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		api0.ServeHTTP(w, r)
	}))
	t.Cleanup(srv0.Close)
	t.Cleanup(func() { close(release) })

	cfg0 := tcpConfig(t, "n0", "")
	cfg0.HTTPAddr = srv0.URL
	n0 := startTCP(t, cfg0)
	api0.node.Store(n0)
	waitLeads(t, n0)
	c := &testCluster{t: t, nodes: []*Node{n0}}
	if _, err := c.register(n0, "m", "a large model"); err != nil {
		t.Fatal(err)
	}

	api1 := &adminStub{}
	srv1 := httptest.NewServer(api1)
	t.Cleanup(srv1.Close)
	cfg1 := tcpConfig(t, "n1", srv0.URL)
	cfg1.HTTPAddr = srv1.URL
	n1, err := Start(cfg1)
	if err != nil {
		t.Fatal(err)
	}
	api1.node.Store(n1)
	testenv.CheckFor(t, 10*time.Second, func() error {
		settling, why := n1.Settling()
		if !settling || !strings.Contains(why, "m version 1 (fetching)") {
			return fmt.Errorf("fresh joiner: settling %v %q; want it fetching m version 1", settling, why)
		}
		return nil
	})
	n1.Stop() // the process restarts before the pull ended

	again, _ := restartNode(t, cfg1, func(b []byte, _ registry.ModelConfig) (registry.Backend, error) {
		if bytes.HasPrefix(b, []byte("broken")) {
			return nil, fmt.Errorf("not a model")
		}
		return textBackend{}, nil
	})
	api1.node.Store(again)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		settling, _ := again.Settling()
		st := again.LocalStatus().Models["m"]["1"]
		if !settling && st.State != VersionReady {
			t.Fatalf("the joiner, restarted before it settled, reports ready (Settling false) while m version 1 is %q here: a load balancer's requests for m get 404", st.State)
		}
	}
}
