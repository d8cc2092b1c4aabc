package gateway_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// TestClusterModelNotReadyHereSaysWhy: the cluster holds model clash,
// but its file on this node holds other bytes, so this node serves no
// version of it. Requests for it get 503 with Retry-After and the reason,
// which tells a balancer to try another member and a person what is
// wrong, not 404 "not served here", which says the model does not exist
// (found by a walk on real servers). A model the cluster does not hold
// still gets 404.
func TestClusterModelNotReadyHereSaysWhy(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	path := placeByHand(t, s, "clash/1", "bytes put here by hand")
	if r := s.admin(t, "POST", "/v1/models/clash/versions?promote=true", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload: %s", r)
	}
	const why = "is not ready on this node: it failed here (tried again every few seconds): " + "%s holds other bytes than the cluster's model"
	body := ctrRequest(features(1, 1, 64), 1)
	check := func(method, uri string, body []byte, fragment string) error {
		r := s.do(t, method, uri, body)
		msg, err := errorMessage(r.body)
		if r.code != fasthttp.StatusServiceUnavailable || err != nil || !strings.Contains(msg, fragment) || r.header["Retry-After"] != "5" {
			return fmt.Errorf("%s %s: %s, Retry-After %q; want 503 with Retry-After 5 and %q", method, uri, r, r.header["Retry-After"], fragment)
		}
		return nil
	}
	unversioned := `model "clash" version 1, which unversioned requests get, ` + fmt.Sprintf(why, path)
	named := `model "clash" version 1 ` + fmt.Sprintf(why, path)
	testenv.CheckFor(t, 10*time.Second, func() error {
		return check("POST", "/v2/models/clash/infer", body, unversioned)
	})
	for _, c := range []struct{ method, uri, want string }{
		{"POST", "/v2/models/clash/versions/1/infer", named},
		{"GET", "/v2/models/clash", unversioned},
		{"GET", "/v2/models/clash/ready", unversioned},
		{"GET", "/v2/models/clash/versions/1/ready", named},
	} {
		if err := check(c.method, c.uri, body, c.want); err != nil {
			t.Fatal(err)
		}
	}
	checkError(t, s.do(t, "POST", "/v2/models/clash/versions/2/infer", body), fasthttp.StatusNotFound, `model "clash" is not served here`)
	checkError(t, s.do(t, "POST", "/v2/models/nosuch/infer", body), fasthttp.StatusNotFound, `model "nosuch" is not served here`)
}

// TestClusterRetiredVersionSaysRetired: a request that names a retired
// version gets 404 saying it is retired, not that the version is not
// ready, which reads as if waiting would help; the index says so too.
func TestClusterRetiredVersionSaysRetired(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	if r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload: %s", r)
	}
	if r := s.admin(t, "DELETE", "/v1/models/ctr/versions/1", nil); r.code != 200 {
		t.Fatalf("retire: %s", r)
	}
	body := ctrRequest(features(1, 1, 64), 1)
	testenv.CheckFor(t, 10*time.Second, func() error {
		r := s.do(t, "POST", "/v2/models/ctr/versions/1/infer", body)
		if msg, _ := errorMessage(r.body); r.code != 404 || msg != `model "ctr" version 1 is retired; ready versions here: 2` {
			return fmt.Errorf("a request naming retired version 1: %s; want 404 saying it is retired", r)
		}
		return nil
	})
	// The repository index and the status page say it is retired, not
	// "unloaded", which reads as if it might come back.
	testenv.CheckFor(t, 10*time.Second, func() error {
		var idx []registry.IndexEntry
		if r := s.do(t, "POST", "/v2/repository/index", nil); json.Unmarshal(r.body, &idx) != nil || len(idx) != 2 ||
			idx[0] != (registry.IndexEntry{Name: "ctr", Version: "1", State: registry.StateUnavailable, Reason: "retired"}) {
			return fmt.Errorf("index: %s; want version 1 UNAVAILABLE, retired", r)
		}
		return nil
	})
	if page := string(s.do(t, "GET", "/", nil).body); !strings.Contains(page, `<td>ctr</td><td>1</td><td class="OFF">UNAVAILABLE</td><td>0</td><td></td><td></td><td>retired</td>`) {
		t.Fatalf("the status page does not show version 1 retired:\n%s", page)
	} else if strings.Contains(page, "not serving (below, with the reason)") {
		// Retired on purpose: no failure to raise (found by a reviewing
		// helper: the page's head counted it as one, for good).
		t.Fatalf("the status page's head counts the retired version as not serving:\n%.600s", page)
	}
}

// TestRetireRefusesToLeaveANodeWithout: production version 2 of ctr failed
// on this node (its file holds other bytes), where version 1 answers the
// unversioned requests. Retiring version 1 is refused (409) naming the
// node; forced, it succeeds, and its answer warns that the node is left
// with no version for them; after it, they get 503 saying why. A
// retirement that leaves every node served is neither refused nor warned
// of.
func TestRetireRefusesToLeaveANodeWithout(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	path := placeByHand(t, s, "ctr/2", "bytes put here by hand")
	if r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload: %s", r)
	}
	body := ctrRequest(features(1, 1, 64), 1)
	testenv.CheckFor(t, 10*time.Second, func() error {
		r := s.admin(t, "GET", "/v1/models/ctr", nil)
		if !strings.Contains(string(r.body), `"state":"failed"`) {
			return fmt.Errorf("version 2 has not failed here yet: %s", r)
		}
		if r := s.do(t, "POST", "/v2/models/ctr/infer", body); r.code != 200 || r.header["X-Model-Version"] != "1" {
			return fmt.Errorf("unversioned: %s; want version 1 to answer", r)
		}
		return nil
	})
	// Refused: the retirement would leave n1 answering 503.
	r := s.admin(t, "DELETE", "/v1/models/ctr/versions/1", nil)
	if msg, _ := errorMessage(r.body); r.code != 409 ||
		!strings.Contains(msg, `retiring version 1 of model "ctr" would leave a node with no version for the model's unversioned requests: node n1: production version 2 failed there (`+path+` holds other bytes`) ||
		!strings.Contains(msg, "retire it anyway with ?force=true") {
		t.Fatalf("retire: %s; want 409 naming n1 and ?force=true", r)
	}
	// A client (the trainer) tells this refusal, which ends by itself,
	// from one a person must lift.
	if k := r.header["X-Infergate-Error-Kind"]; k != "stands-in" {
		t.Errorf("the refusal's X-Infergate-Error-Kind %q; want stands-in", k)
	}
	if r := s.do(t, "POST", "/v2/models/ctr/infer", body); r.code != 200 || r.header["X-Model-Version"] != "1" {
		t.Fatalf("unversioned after the refused retirement: %s; want version 1 to answer still", r)
	}
	// Forced: retired, with the node it leaves so named.
	r = s.admin(t, "DELETE", "/v1/models/ctr/versions/1?force=true", nil)
	var ans struct {
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(r.body, &ans); r.code != 200 || err != nil || len(ans.Warnings) != 1 ||
		!strings.HasPrefix(ans.Warnings[0], "node n1: production version 2 failed there ("+path+" holds other bytes") ||
		!strings.Contains(ans.Warnings[0], `the node answers model "ctr"'s unversioned requests 503 until production is ready there`) {
		t.Fatalf("forced retire: %s; want 200 warning that n1 is left without a version", r)
	}
	if !strings.Contains(s.log.String(), `forced the retirement of model "ctr" version 1 past its refusal: node n1: production version 2 failed there`) {
		t.Errorf("the audit does not say the retirement was forced:\n%s", s.log.String())
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		r := s.do(t, "POST", "/v2/models/ctr/infer", body)
		if msg, _ := errorMessage(r.body); r.code != 503 || !strings.Contains(msg, `model "ctr" version 2, which unversioned requests get, is not ready on this node: it failed here`) {
			return fmt.Errorf("unversioned after the retirement: %s; want 503 saying version 2 failed here", r)
		}
		return nil
	})
	// Version 2 still failed here, version 1 retired: a staged version,
	// which answers no unversioned requests here, retires without a
	// refusal or a warning.
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if m := s.repo.Model("ctr"); m == nil || m.Version(3) == nil {
			return fmt.Errorf("version 3 not loaded yet")
		}
		return nil
	})
	if r := s.admin(t, "DELETE", "/v1/models/ctr/versions/3", nil); r.code != 200 || strings.Contains(string(r.body), "warnings") {
		t.Fatalf("retiring staged version 3: %s; want 200 without warnings", r)
	}
}

// placeByHand writes content as the model.onnx of at ("model/version")
// in s's repository, as a person would by hand, and returns its path.
func placeByHand(t *testing.T, s *testServer, at, content string) string {
	t.Helper()
	path := filepath.Join(s.repo.Dir(), filepath.FromSlash(at), "model.onnx")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStatusPageFoldsRetiredVersions: a trainer that uploads, promotes
// and retires a version a day leaves the status page one row per model
// for the retired ones, in grey, not one red UNAVAILABLE row each: before,
// after 20 such rounds the page held 20 red rows above the versions that
// serve, and a real failure among them was hard to find.
func TestStatusPageFoldsRetiredVersions(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	const rounds = 20
	for v := 2; v <= rounds+1; v++ {
		if r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", ctrONNX()); r.code/100 != 2 {
			t.Fatalf("upload: %s", r)
		}
		if r := s.admin(t, "DELETE", fmt.Sprintf("/v1/models/ctr/versions/%d", v-1), nil); r.code != 200 {
			t.Fatalf("retire version %d: %s", v-1, r)
		}
	}
	// A version retired before it loaded here is not in the index: count
	// those that are.
	retired, last := 0, ""
	testenv.CheckFor(t, 10*time.Second, func() error {
		var idx []registry.IndexEntry
		if r := s.do(t, "POST", "/v2/repository/index", nil); json.Unmarshal(r.body, &idx) != nil || len(idx) < 2 ||
			idx[len(idx)-1] != (registry.IndexEntry{Name: "ctr", Version: strconv.Itoa(rounds + 1), State: registry.StateReady}) {
			return fmt.Errorf("index: %s; want version %d ready, last", r, rounds+1)
		}
		retired = 0
		for _, e := range idx[:len(idx)-1] {
			if e.State != registry.StateUnavailable || e.Reason != "retired" {
				return fmt.Errorf("index: %+v; want the versions before %d retired", idx, rounds+1)
			}
			retired++
		}
		if idx[0].Version != "1" {
			return fmt.Errorf("index: %+v; want version 1 retired", idx)
		}
		last = idx[len(idx)-2].Version
		return nil
	})
	page := string(s.do(t, "GET", "/", nil).body)
	if n := strings.Count(page, `<td class="UNAVAILABLE">`); n != 0 {
		t.Fatalf("the status page shows %d versions in red; want none, retiring being no failure:\n%s", n, page)
	}
	want := fmt.Sprintf(`<td>ctr</td><td>1–%s</td><td class="OFF">UNAVAILABLE</td><td>0</td><td></td><td></td><td>retired (%d versions)</td>`, last, retired)
	if !strings.Contains(page, want) {
		t.Fatalf("the status page does not fold the retired versions into %s:\n%s", want, page)
	}
	if strings.Contains(page, "not serving (below, with the reason)") {
		t.Fatalf("the status page's head counts the retired versions as not serving:\n%.600s", page)
	}
	if n := strings.Count(page, "<tr><td>ctr</td>"); n != 4 {
		t.Fatalf("the status page has %d rows for ctr; want 4 (the retired, version %d serving, its traffic, the cluster's model):\n%s", n, rounds+1, page)
	}
}
