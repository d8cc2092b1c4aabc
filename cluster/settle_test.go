package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A node started fresh with --join says it is settling (and the gateway
// not ready) until the cluster's models are loaded on it, not as soon as
// the group takes it in: a load balancer would send it requests it
// answers 404.
func TestFreshJoinerSettlesOnceModelsLoad(t *testing.T) {
	trans, apis, srvs := stubNet(t, 2, 7400)
	cfg0 := testConfig(t, "n0", trans[0], "")
	cfg0.HTTPAddr = srvs[0].URL
	n0 := startOn(t, cfg0, apis[0])
	c := &testCluster{t: t, nodes: []*Node{n0}}
	c.waitLeader(n0)
	if settling, why := n0.Settling(); settling {
		t.Fatalf("the bootstrapping node settles: %s", why)
	}
	const content = "settles once loaded"
	if _, err := c.register(n0, "m", content); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n0.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("n0: m version 1 %+v", s)
		}
		return nil
	})

	gate := make(chan struct{})
	loadGates.Store(content, gate)
	defer loadGates.Delete(content)
	cfg1 := testConfig(t, "n1", trans[1], srvs[0].URL)
	cfg1.HTTPAddr = srvs[1].URL
	if _, _, err := cfg1.Blobs.Put(bytes.NewReader([]byte(content)), 1<<20); err != nil {
		t.Fatal(err)
	}
	n1 := startOn(t, cfg1, apis[1])
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	t.Cleanup(release) // before n1 stops: its load waits on the gate
	testenv.CheckFor(t, 10*time.Second, func() error {
		settling, why := n1.Settling()
		if !settling || !strings.Contains(why, "m version 1 (loading)") {
			return fmt.Errorf("joiner: settling %v: %q; want it loading m version 1", settling, why)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if settling, _ := n1.Settling(); !settling {
		t.Fatal("the joiner settled while its load was held")
	}
	release()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if settling, why := n1.Settling(); settling {
			return errors.New(why)
		}
		return nil
	})
	if !n1.settled.Load() {
		t.Fatal("settled is not latched")
	}
}
