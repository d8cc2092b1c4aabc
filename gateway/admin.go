package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry/blobs"
)

// controlPlane is what the admin API serves over.
type controlPlane struct {
	node  *cluster.Node
	blobs *blobs.Store
}

// AttachCluster serves the admin API (/v1) over node and its blob store;
// until it is called, /v1 answers 503. It may be called while serving.
func (s *Server) AttachCluster(node *cluster.Node, store *blobs.Store) {
	s.plane.Store(&controlPlane{node: node, blobs: store})
}

var pathV1 = []byte("/v1/")

// HeaderModelConfig carries an uploaded version's config.json (batching,
// instances, cache) on POST /v1/models/{name}/versions.
const HeaderModelConfig = "Infergate-Model-Config"

// authorizeAdmin checks the admin bearer token in constant time. With no
// token configured, only loopback clients may use the admin API, and not
// through a proxy.
func (s *Server) authorizeAdmin(ctx *fasthttp.RequestCtx) error {
	if s.cfg.AdminToken == "" {
		if !localClient(ctx) {
			return &httpError{code: fasthttp.StatusForbidden, msg: errMsgNotLoopback}
		}
		if h := proxiedBy(ctx); h != "" {
			return &httpError{code: fasthttp.StatusForbidden, msg: errMsgProxied(h)}
		}
		return nil
	}
	if !bearerMatches(ctx, s.cfg.AdminToken) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="infergate admin"`)
		if len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) == 0 {
			return &httpError{code: fasthttp.StatusUnauthorized, msg: "this call needs the admin token: send Authorization: Bearer <token>"}
		}
		// A member started with another token is the usual cause: say so
		// where the operator looks, once a minute.
		if more, ok := s.wrongTokens.Allow(struct{}{}); ok {
			s.logf(logging.Warning+"admin: refused %s %s from %s: its token is not this server's --admin-token%s", ctx.Method(), ctx.Path(), ctx.RemoteIP(), more)
		}
		return &httpError{code: fasthttp.StatusUnauthorized, msg: errMsgWrongAdminToken}
	}
	return nil
}

// The refusals of the admin API that HTTP and gRPC (grpcAuthorizeAdmin)
// share.
const (
	errMsgNotLoopback     = "the admin API answers only loopback clients when the server has no admin token; start it with --admin-token (or INFERGATE_ADMIN_TOKEN)"
	errMsgWrongAdminToken = "the admin token sent is not this server's: every node of a cluster, and every client of its admin API, needs the same --admin-token"
)

// errMsgProxied is the refusal of a loopback client without a token
// whose request carries what a proxy adds: by names it.
func errMsgProxied(by string) string {
	return "the admin API answers loopback clients without a token only when they are on this host, and this request came through a proxy (it carries " + by + "); start the server with --admin-token (or INFERGATE_ADMIN_TOKEN)"
}

// localClient reports whether the client is on this host: a loopback TCP
// peer, or a non-TCP one (a unix socket, an in-memory pipe).
func localClient(ctx *fasthttp.RequestCtx) bool {
	a, ok := ctx.RemoteAddr().(*net.TCPAddr)
	return !ok || a.IP.IsLoopback()
}

// proxiedBy returns the header by which a proxy in front of the server
// names the client it forwards, when the request carries one, else "": a
// proxy on this host makes every client a loopback one.
func proxiedBy(ctx *fasthttp.RequestCtx) string {
	for _, h := range [...]string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"} {
		if len(ctx.Request.Header.Peek(h)) > 0 {
			return h
		}
	}
	return ""
}

// bearerMatches reports whether the request carries "Bearer <token>" (the
// scheme's name in any case, as HTTP has it).
func bearerMatches(ctx *fasthttp.RequestCtx, token string) bool {
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const scheme = "bearer "
	if len(h) < len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return false
	}
	return subtle.ConstantTimeCompare(h[len(scheme):], []byte(token)) == 1
}

// routeAdmin serves /v1/...: the cluster's admin API and its peer calls.
func (s *Server) routeAdmin(ctx *fasthttp.RequestCtx, rest []byte) error {
	if err := s.authorizeAdmin(ctx); err != nil {
		return err
	}
	switch string(rest) {
	case "traffic":
		// This node's own log: no control plane involved.
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.readTraffic(ctx)
	case "traffic/stats":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.trafficStats(ctx)
	}
	cp := s.plane.Load()
	if cp == nil {
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 1, kind: cluster.ErrorKind(cluster.ErrNotLeader),
			msg: "the control plane is starting; retry in a moment"}
	}
	parts := bytes.Split(bytes.TrimSuffix(rest, slash), slash)
	seg := func(i int) string {
		if i < len(parts) {
			return string(parts[i])
		}
		return ""
	}
	switch {
	case seg(0) == "models" && len(parts) == 1:
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.listModels(cp, ctx, "")
	case seg(0) == "models" && len(parts) == 2:
		if err := allow(ctx, fasthttp.MethodGet, fasthttp.MethodDelete); err != nil {
			return err
		}
		if string(ctx.Method()) == fasthttp.MethodDelete {
			return s.removeModel(cp, ctx, seg(1))
		}
		return s.listModels(cp, ctx, seg(1))
	case seg(0) == "models" && len(parts) == 3 && seg(2) == "versions":
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		return s.uploadVersion(cp, ctx, seg(1))
	case seg(0) == "models" && len(parts) == 4 && seg(2) == "versions":
		if err := allow(ctx, fasthttp.MethodDelete); err != nil {
			return err
		}
		return s.retireVersion(cp, ctx, seg(1), seg(3))
	case seg(0) == "models" && len(parts) == 4 && seg(2) == "aliases":
		if err := allow(ctx, fasthttp.MethodPut); err != nil {
			return err
		}
		return s.setAlias(cp, ctx, seg(1), seg(3))
	case seg(0) == "models" && len(parts) == 3 && seg(2) == "experiment":
		if err := allow(ctx, fasthttp.MethodPut, fasthttp.MethodDelete); err != nil {
			return err
		}
		if string(ctx.Method()) == fasthttp.MethodDelete {
			return s.apply(cp, ctx, fsm.Command{Op: fsm.OpEndExperiment, Model: seg(1)}, func(*fsm.Result) any {
				return map[string]any{"model": seg(1), "experiment": nil}
			})
		}
		return s.setExperiment(cp, ctx, seg(1))
	case seg(0) == "models" && len(parts) == 3 && seg(2) == "shadow":
		if err := allow(ctx, fasthttp.MethodPut, fasthttp.MethodDelete); err != nil {
			return err
		}
		if string(ctx.Method()) == fasthttp.MethodDelete {
			return s.apply(cp, ctx, fsm.Command{Op: fsm.OpEndShadow, Model: seg(1)}, func(*fsm.Result) any {
				return map[string]any{"model": seg(1), "shadow": nil}
			})
		}
		return s.setShadow(cp, ctx, seg(1))
	case seg(0) == "models" && len(parts) == 3 && seg(2) == "rollback":
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		return s.apply(cp, ctx, fsm.Command{Op: fsm.OpRollback, Model: seg(1)}, func(res *fsm.Result) any {
			return map[string]any{"model": seg(1), "version": res.Version}
		})
	case seg(0) == "cluster" && len(parts) == 1:
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.clusterStatus(cp, ctx)
	case seg(0) == "cluster" && seg(1) == "join" && len(parts) == 2:
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		return s.join(cp, ctx)
	case seg(0) == "cluster" && seg(1) == "members" && len(parts) >= 3:
		if err := allow(ctx, fasthttp.MethodDelete); err != nil {
			return err
		}
		// The rest is the id: a node id may hold a '/' (--node-id allows
		// one), which arrives escaped and is decoded by now.
		return s.removeMember(cp, ctx, string(bytes.Join(parts[2:], slash)))
	case seg(0) == "cluster" && seg(1) == "apply" && len(parts) == 2:
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		return s.applyForwarded(cp, ctx)
	case seg(0) == "cluster" && seg(1) == "backup" && len(parts) == 2:
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.backup(cp, ctx)
	case seg(0) == "cluster" && seg(1) == "read-index" && len(parts) == 2:
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		index, err := cp.node.LeaderIndex()
		if err != nil {
			return clusterError(err)
		}
		return writeJSON(ctx, map[string]uint64{"index": index})
	case seg(0) == "local" && seg(1) == "models" && len(parts) == 2:
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return writeJSON(ctx, cp.node.LocalStatus())
	case seg(0) == "blobs" && len(parts) == 2:
		if err := allow(ctx, fasthttp.MethodGet, fasthttp.MethodHead); err != nil {
			return err
		}
		return s.serveBlob(cp, ctx, seg(1))
	}
	return notFound("no such admin endpoint %q; see the README's admin API table", ctx.Path())
}

// readState sets the headers that say how current a local read is,
// after a linearizable wait when the request asks ?consistent=1.
func (s *Server) readState(cp *controlPlane, ctx *fasthttp.RequestCtx) error {
	if c := ctx.QueryArgs().Peek("consistent"); len(c) > 0 && string(c) != "0" && string(c) != "false" {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cp.node.ReadIndex(rctx); err != nil {
			return clusterError(err)
		}
	}
	st := cp.node.Staleness()
	h := &ctx.Response.Header
	h.Set("X-Infergate-Index", strconv.FormatUint(st.Index, 10))
	h.Set("X-Infergate-Known-Leader", strconv.FormatBool(st.KnownLeader))
	lc := st.LastContact.Milliseconds()
	if st.LastContact < 0 {
		lc = -1 // never heard from a leader
	}
	h.Set("X-Infergate-Last-Contact", strconv.FormatInt(lc, 10))
	return nil
}

// waitCurrent waits, up to 5 s, until this node's state is the group's
// present as far as it can tell (cluster.Node.WaitReplayed): a restarted
// node's models are the past until it has replayed its log (a second or
// two, with a leader), where one registered before the restart reads as
// unknown and a write's checks against the models (a promotion's inputs,
// a retirement's warnings) would check the past. The members' view
// (clusterStatus) does not wait: it is what an operator reads when there
// is no leader.
func waitCurrent(cp *controlPlane) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cp.node.WaitReplayed(ctx); err != nil {
		return clusterError(err)
	}
	return nil
}

func (s *Server) listModels(cp *controlPlane, ctx *fasthttp.RequestCtx, name string) error {
	if err := waitCurrent(cp); err != nil {
		return err
	}
	if err := s.readState(cp, ctx); err != nil {
		return err
	}
	views, err := cp.node.Models(context.Background(), name)
	if err != nil {
		if name != "" && errors.Is(err, fsm.ErrNotFound) && s.repo.Model(name) != nil {
			// A KServe v1 or TensorFlow Serving client asks here whether
			// a model is ready; this path is the cluster's.
			return notFound("%s; this node serves %q from its --models directory, outside the cluster: GET /v2/models/%s/ready says whether it is ready", err, name, name)
		}
		return clusterError(err)
	}
	if name != "" {
		return writeJSON(ctx, views[0])
	}
	if views == nil {
		views = []cluster.ModelView{}
	}
	return writeJSON(ctx, map[string]any{"models": views})
}

func (s *Server) uploadVersion(cp *controlPlane, ctx *fasthttp.RequestCtx, name string) error {
	if err := waitCurrent(cp); err != nil { // its checks read the local state
		return err
	}
	body, err := s.requestBody(ctx)
	if err != nil {
		return err
	}
	promote := false
	if p := ctx.QueryArgs().Peek("promote"); len(p) > 0 {
		if promote, err = strconv.ParseBool(string(p)); err != nil {
			return badRequest("promote=%q: use true or false", p)
		}
	}
	config := ctx.Request.Header.Peek(HeaderModelConfig)
	how := "staged"
	if promote {
		how = "promoted to production"
	}
	var check func(in, out []oip.TensorMetadata) error
	if promote {
		force, err := forced(ctx)
		if err != nil {
			return err
		}
		if !force {
			check = func(in, out []oip.TensorMetadata) error {
				return s.signatureConflict(cp, name, in, out, "promoting the uploaded version", "the new version's", "infergate models upload --promote --force")
			}
		}
	}
	res, hex, err := cp.node.UploadChecked(context.Background(), name, body, promote, config, check)
	if err != nil {
		return s.writeFailed(ctx, err, "uploaded a version of model %q (%d bytes), %s", name, len(body), how)
	}
	s.audit(ctx, "uploaded model %q version %d (sha256:%.12s, %d bytes), %s", name, res.Version, hex, len(body), how)
	ctx.SetStatusCode(fasthttp.StatusCreated)
	return writeJSON(ctx, map[string]any{"model": name, "version": res.Version, "sha256": hex})
}

// removeModel takes model name off the cluster (fsm.OpRemoveModel):
// every node unloads it, its versions stay listed as retired, and a later
// upload continues its numbering. The answer names the versions it
// retired. 409 while a member runs an earlier release, which would refuse
// the op.
func (s *Server) removeModel(cp *controlPlane, ctx *fasthttp.RequestCtx, name string) error {
	if err := waitCurrent(cp); err != nil { // the answer reads the local state
		return err
	}
	st, _ := cp.node.FSM().State()
	retiring := []int64{}
	if m := st.Model(name); m != nil {
		for _, v := range m.Versions {
			if v.Stage != fsm.StageRetired {
				retiring = append(retiring, v.Number)
			}
		}
	}
	return s.apply(cp, ctx, fsm.Command{Op: fsm.OpRemoveModel, Model: name}, func(*fsm.Result) any {
		return map[string]any{"model": name, "removed": true, "retired_versions": retiring}
	})
}

func (s *Server) retireVersion(cp *controlPlane, ctx *fasthttp.RequestCtx, name, version string) error {
	if err := waitCurrent(cp); err != nil { // its checks read the local state
		return err
	}
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil || v < 1 {
		return badRequest("version %q: versions are positive integers", version)
	}
	force, err := forced(ctx)
	if err != nil {
		return err
	}
	warnings := s.retireWarnings(cp, name, v)
	if len(warnings) > 0 && !force {
		return &httpError{code: fasthttp.StatusConflict, kind: cluster.KindStandsIn, msg: fmt.Sprintf(
			"retiring version %d of model %q would leave a node with no version for the model's unversioned requests: %s. Make production ready there first, or retire it anyway with ?force=true (infergate models retire --force)",
			v, name, strings.Join(warnings, "; "))}
	}
	return s.apply(cp, ctx, fsm.Command{Op: fsm.OpRetireVersion, Model: name, Version: v}, func(*fsm.Result) any {
		ans := map[string]any{"model": name, "version": v, "stage": fsm.StageRetired}
		if len(warnings) > 0 {
			ans["warnings"] = warnings
			// The audit says the refusal was overridden, and what it said.
			s.audit(ctx, "forced the retirement of model %q version %d past its refusal: %s", name, v, strings.Join(warnings, "; "))
		}
		return ans
	})
}

// retireWarnings names the members that retiring version v of model name
// would leave without a version for its unversioned requests: v answers
// them there, and production failed there other than by a pull tried
// again (for which v stays as a stand-in: cluster's standIn). There v
// goes, and the node answers those requests 503 until production is ready
// there. It asks the members as `models show` does, for a second at most;
// members that do not answer in time, or of earlier releases (which mark
// no version as answering the unversioned requests), are not named.
func (s *Server) retireWarnings(cp *controlPlane, name string, v int64) []string {
	views, err := cp.node.Models(context.Background(), name)
	if err != nil || len(views) != 1 {
		return nil
	}
	mv := views[0]
	p := mv.Production
	var retiring, prod *cluster.VersionView
	for i := range mv.Versions {
		switch mv.Versions[i].Number {
		case v:
			retiring = &mv.Versions[i]
		case p:
			prod = &mv.Versions[i]
		}
	}
	if retiring == nil || prod == nil || retiring.Stage == fsm.StageRetired {
		return nil
	}
	var out []string
	for _, id := range slices.Sorted(maps.Keys(retiring.Nodes)) {
		if !retiring.Nodes[id].Unversioned {
			continue
		}
		if st := prod.Nodes[id]; st.State == cluster.VersionFailed && !st.Retrying {
			out = append(out, fmt.Sprintf("node %s: production version %d failed there (%s), and version %d answers the unversioned requests there; retired, it goes, and the node answers model %q's unversioned requests 503 until production is ready there", id, p, st.Reason, v, name))
		}
	}
	return out
}

func (s *Server) setAlias(cp *controlPlane, ctx *fasthttp.RequestCtx, name, alias string) error {
	if err := waitCurrent(cp); err != nil { // its checks read the local state
		return err
	}
	var q struct {
		Version int64 `json:"version"`
	}
	if err := s.readJSON(ctx, &q); err != nil {
		return err
	}
	if q.Version < 1 {
		return badRequest(`the body must name the version: {"version": N}`)
	}
	if alias == fsm.AliasProduction {
		if err := s.checkSignature(cp, ctx, name, q.Version, "promoting"); err != nil {
			return err
		}
	}
	return s.apply(cp, ctx, fsm.Command{Op: fsm.OpSetAlias, Model: name, Alias: alias, Version: q.Version}, func(*fsm.Result) any {
		return map[string]any{"model": name, "alias": alias, "version": q.Version}
	})
}

// setExperiment starts model name's A/B experiment, or replaces the one
// it runs, from a body like {"name": "ranking", "arms": [{"name":
// "control", "version": 1, "weight": 90}, {"name": "treatment",
// "version": 2, "weight": 10}]}.
func (s *Server) setExperiment(cp *controlPlane, ctx *fasthttp.RequestCtx, name string) error {
	if err := waitCurrent(cp); err != nil { // its checks read the local state
		return err
	}
	e, err := decodeValid[route.Experiment](s, ctx)
	if err != nil {
		return err
	}
	for _, a := range e.Arms {
		if a.Weight == 0 {
			continue // paused: it takes no requests
		}
		if err := s.checkSignature(cp, ctx, name, a.Version, "arm "+strconv.Quote(a.Name)+" of the experiment, sending clients' unversioned requests to"); err != nil {
			return err
		}
	}
	// The cluster sets the phase (fsm); a client's is ignored.
	e.Phase, e.Started = 0, time.Time{}
	c := fsm.Command{Op: fsm.OpSetExperiment, Model: name, Experiment: e, Created: time.Now().UTC().Truncate(time.Millisecond)}
	return s.apply(cp, ctx, c, func(r *fsm.Result) any {
		res := map[string]any{"model": name, "experiment": e}
		// Say whether the write began a phase: a phase is numbered by
		// the index of the write that began it (fsm). Only once this
		// node has applied the write (Node.Apply waits for it, briefly,
		// when a leader applied it), and never from a leader of an
		// earlier release, which gives no index. A concurrent write may
		// have changed the experiment again; then only the split is
		// said.
		if r.Index == 0 || cp.node.FSM().Applied() < r.Index {
			return res
		}
		if now := experimentOf(cp, name); now.SameSplit(e) {
			res["experiment"] = now
			res["new_phase"] = now.Phase == r.Index
		}
		return res
	})
}

// experimentOf returns the experiment model name runs in this node's
// state, or nil.
func experimentOf(cp *controlPlane, name string) *route.Experiment {
	st, _ := cp.node.FSM().State()
	if m := st.Models[name]; m != nil {
		return m.Experiment
	}
	return nil
}

// setShadow starts copying a sample of model name's requests to a shadow
// version, or changes what it copies, from a body like {"version": 2,
// "percent": 10, "tolerance": 0.001}.
func (s *Server) setShadow(cp *controlPlane, ctx *fasthttp.RequestCtx, name string) error {
	sh, err := decodeValid[route.Shadow](s, ctx)
	if err != nil {
		return err
	}
	return s.apply(cp, ctx, fsm.Command{Op: fsm.OpSetShadow, Model: name, Shadow: sh}, func(*fsm.Result) any {
		return map[string]any{"model": name, "shadow": sh}
	})
}

// decodeValid decodes the request body into a T strictly and validates
// it; both failures are 400s that say what to fix.
func decodeValid[T any, P interface {
	*T
	Validate() error
}](s *Server, ctx *fasthttp.RequestCtx) (P, error) {
	v := P(new(T))
	if err := s.readJSON(ctx, v); err != nil {
		return nil, err
	}
	if err := v.Validate(); err != nil {
		return nil, badRequest("%s", err)
	}
	return v, nil
}

// apply runs c through the cluster and answers with answer's value.
func (s *Server) apply(cp *controlPlane, ctx *fasthttp.RequestCtx, c fsm.Command, answer func(*fsm.Result) any) error {
	res, err := cp.node.Apply(context.Background(), c)
	if err != nil {
		return s.writeFailed(ctx, err, "%s", describeCommand(&c, nil))
	}
	s.audit(ctx, "%s", describeCommand(&c, res))
	return writeJSON(ctx, answer(res))
}

// applyForwarded applies a command another node forwarded to this one,
// the leader as that node believed.
func (s *Server) applyForwarded(cp *controlPlane, ctx *fasthttp.RequestCtx) error {
	c, err := fsm.Decode(ctx.PostBody())
	if err != nil {
		return clusterError(err)
	}
	res, err := cp.node.ApplyLocal(c)
	if err != nil {
		return clusterError(err)
	}
	return writeJSON(ctx, res)
}

func (s *Server) clusterStatus(cp *controlPlane, ctx *fasthttp.RequestCtx) error {
	if err := s.readState(cp, ctx); err != nil {
		return err
	}
	// Another node asking for the leader's own view (MembersFromLeader)
	// gets it as it is, never a view asked of another node in turn.
	membersOf := func() (string, []cluster.Member, error) {
		return cp.node.MembersFromLeader(context.Background())
	}
	if len(ctx.Request.Header.Peek(cluster.HeaderForwarded)) > 0 {
		membersOf = cp.node.Members
	}
	leader, members, err := membersOf()
	if err != nil {
		return clusterError(err)
	}
	return writeJSON(ctx, map[string]any{"leader": leader, "members": members})
}

func (s *Server) join(cp *controlPlane, ctx *fasthttp.RequestCtx) error {
	var m fsm.Member
	if err := s.readJSON(ctx, &m); err != nil {
		return err
	}
	fresh := ctx.Request.Header.Peek(cluster.HeaderFresh)
	m.Fresh, m.KnowsDropped = string(fresh) == "1", len(fresh) > 0
	m.Protocol = cluster.ParseProtocol(string(ctx.Request.Header.Peek(cluster.HeaderProtocol)))
	forwarded := len(ctx.Request.Header.Peek(cluster.HeaderForwarded)) > 0
	var err error
	if forwarded {
		err = cp.node.JoinLocal(m)
	} else {
		err = cp.node.Join(context.Background(), m)
	}
	if err != nil {
		if forwarded {
			return clusterError(err) // the node the client called logs it
		}
		return s.writeFailed(ctx, err, "taken node %s into the cluster (raft %s, http %s)", m.ID, m.RaftAddr, m.HTTPAddr)
	}
	if !forwarded {
		s.audit(ctx, "took node %s into the cluster (raft %s, http %s)", m.ID, m.RaftAddr, m.HTTPAddr)
	}
	return writeJSON(ctx, struct{}{})
}

func (s *Server) removeMember(cp *controlPlane, ctx *fasthttp.RequestCtx, id string) error {
	var err error
	forwarded := len(ctx.Request.Header.Peek(cluster.HeaderForwarded)) > 0
	if forwarded {
		err = cp.node.RemoveLocal(id)
	} else {
		err = cp.node.Remove(context.Background(), id)
	}
	if err != nil {
		if forwarded {
			return clusterError(err) // the node the client called logs it
		}
		return s.writeFailed(ctx, err, "removed member %s from the cluster", id)
	}
	if !forwarded {
		s.audit(ctx, "removed member %s from the cluster", id)
	}
	return writeJSON(ctx, struct{}{})
}

// serveBlob streams a stored blob to a peer.
func (s *Server) serveBlob(cp *controlPlane, ctx *fasthttp.RequestCtx, digest string) error {
	hex, err := blobs.ParseDigest(digest)
	if err != nil {
		return badRequest("%s; blobs are addressed as sha256:<64 hex digits>", err)
	}
	f, size, err := cp.blobs.Open(hex)
	if err != nil {
		if errors.Is(err, blobs.ErrNotFound) {
			return notFound("blob sha256:%s is not stored on this node", hex)
		}
		return internal(err)
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Docker-Content-Digest", "sha256:"+hex)
	if ctx.IsHead() {
		f.Close()
		ctx.Response.Header.SetContentLength(int(size))
		return nil
	}
	// The server's --write-timeout bounds a whole response; a large model
	// takes longer. Write this one on the hijacked connection instead,
	// allowing 1 MiB/s and at least 30 s (what the pulling peer allows).
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer f.Close()
		c.SetWriteDeadline(time.Now().Add(blobWriteTime(size)))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nDocker-Content-Digest: sha256:%s\r\nConnection: close\r\n\r\n", size, hex)
		// fasthttp hands over its own wrapper; under it is the listener's
		// limitConn, and under that the TCP connection, whose ReadFrom
		// sends the file with sendfile. The write deadline set above is
		// armed on it already: a hijack clears the deadlines first, so
		// limitConn arms a new one at once.
		raw := c
		if u, ok := raw.(interface{ UnsafeConn() net.Conn }); ok {
			raw = u.UnsafeConn()
		}
		if lc, ok := raw.(*limitConn); ok {
			c = lc.Conn
		}
		if _, err := io.Copy(c, f); err != nil {
			s.logf(logging.Warning+"sending blob sha256:%s to %s: %v", hex, c.RemoteAddr(), err)
		}
	})
	return nil
}

// backup streams a consistent backup of the cluster's state, taken on
// this node (cluster.Node.Backup), as a tar archive, gzipped with
// ?gzip=1. Its errors come before the first byte; one while streaming
// (a blob damaged on disk, a client gone) is logged and the connection
// closed, so that the archive lacks its end, which a restore refuses.
func (s *Server) backup(cp *controlPlane, ctx *fasthttp.RequestCtx) error {
	gz := false
	switch q := string(ctx.QueryArgs().Peek("gzip")); q {
	case "", "0", "false":
	case "1", "true":
		gz = true
	default:
		return badRequest("gzip=%q: want 1 or 0", q)
	}
	start := time.Now()
	// fasthttp does not say when a client goes: the backup's cut has its
	// own bound, and blobs missing here are fetched for as long as each
	// fetch's limit allows (more for a larger blob), or until the node
	// stops.
	b, err := cp.node.Backup(context.Background(), s.cfg.Version)
	switch {
	case errors.Is(err, cluster.ErrBackupBusy):
		return &httpError{code: fasthttp.StatusTooManyRequests, retryAfter: 5, msg: err.Error() + "; retry once it is done"}
	case errors.Is(err, cluster.ErrBackupBlobMissing):
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 5, msg: err.Error()}
	case err != nil:
		return clusterError(err)
	}
	m := &b.Manifest
	ctype := "application/x-tar"
	if gz {
		ctype = "application/gzip"
	}
	// fasthttp skips the hijack handler when the connection fails first
	// (a flush or a deadline): then the timer releases the backup, or the
	// node would refuse every later one as busy. Whichever runs first
	// owns b.
	var claimed atomic.Bool
	giveUp := time.AfterFunc(30*time.Second, func() {
		if claimed.CompareAndSwap(false, true) {
			b.Close()
		}
	})
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if !claimed.CompareAndSwap(false, true) {
			return // released already; the client sees the connection close
		}
		giveUp.Stop()
		defer b.Close()
		// Each write may take --write-timeout (progressWriter), not the
		// whole archive: a client that stops reading gives the backup
		// slot (and the blobs it keeps from the sweep) back then, and a
		// slow one that keeps reading is never cut off.
		c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nX-Infergate-Backup-Index: %d\r\nConnection: close\r\n\r\n", ctype, m.Index)
		raw := c
		if u, ok := raw.(interface{ UnsafeConn() net.Conn }); ok {
			raw = u.UnsafeConn()
		}
		if lc, ok := raw.(*limitConn); ok {
			c = lc.Conn
		}
		bw := bufio.NewWriterSize(&progressWriter{c: c, timeout: s.cfg.WriteTimeout}, 256<<10)
		var w io.Writer = bw
		var zw *gzip.Writer
		if gz {
			zw = gzip.NewWriter(bw)
			w = zw
		}
		n, err := b.WriteTo(w)
		if err == nil && zw != nil {
			err = zw.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			// A client gone is a WARNING; a blob damaged or gone on
			// this node, which no backup can hold, an ERROR.
			level := logging.Warning
			if errors.Is(err, blobs.ErrDigestMismatch) || errors.Is(err, cluster.ErrBackupBlobMissing) {
				level = logging.Error
			}
			s.logf(level+"admin: backup at raft index %d to %s stopped after %d bytes: %v", m.Index, c.RemoteAddr(), n, err)
			return
		}
		counts := "no experiment counts"
		if ec := m.ExperimentCounts; ec != nil {
			missing := "none"
			if len(ec.Missing) > 0 {
				missing = strings.Join(ec.Missing, ", ")
			}
			counts = fmt.Sprintf("experiment counts (%d models, %d nodes, missing: %s)", len(ec.Models), len(ec.Nodes), missing)
		}
		s.logf("admin: sent a backup at raft index %d (term %d) to %s: %d models, %d versions, %d blobs, %s, %d bytes in %s", m.Index, m.Term, c.RemoteAddr(), m.Models, m.Versions, len(m.Blobs), counts, n, time.Since(start).Round(time.Millisecond))
	})
	return nil
}

// progressWriter writes to c, allowing each write timeout: a deadline
// that moves with progress, where one for the whole stream would hold a
// stalled client's resources for as long as the fastest transfer takes.
type progressWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w *progressWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

// blobWriteTime is how long sending a blob of size bytes may take.
func blobWriteTime(size int64) time.Duration {
	return 30*time.Second + time.Duration(size>>20)*time.Second
}

// decodeStrict decodes a JSON body, refusing unknown fields and anything
// after the object: a misspelled or misplaced field must not leave a
// setting silently at its old value.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("the request body is not the expected JSON: %s", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("the request body has more after its JSON object, at byte %d; send one object", dec.InputOffset())
	}
	return nil
}

// clusterError maps the control plane's errors to statuses.
func clusterError(err error) error {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, fsm.ErrInvalid):
		return badRequest("%s", err)
	case errors.Is(err, fsm.ErrNotFound):
		return notFound("%s", err)
	case errors.Is(err, fsm.ErrConflict):
		// The kind tells a joining node that it was dropped (ErrDropped).
		return &httpError{code: fasthttp.StatusConflict, msg: err.Error(), kind: cluster.ErrorKind(err)}
	case errors.Is(err, cluster.ErrUnknownOutcome):
		// No Retry-After: a blind retry could apply the write twice.
		return &httpError{code: fasthttp.StatusServiceUnavailable, kind: cluster.ErrorKind(err),
			msg: err.Error() + "; read the state back (GET with ?consistent=1) before retrying"}
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrStopped), errors.Is(err, cluster.ErrBehind):
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 1, msg: err.Error(), kind: cluster.ErrorKind(err)}
	case errors.Is(err, cluster.ErrTrialLoadsBusy):
		return &httpError{code: fasthttp.StatusTooManyRequests, retryAfter: 5, msg: err.Error()}
	case errors.Is(err, cluster.ErrUnauthorized):
		return &httpError{code: fasthttp.StatusBadGateway, msg: fmt.Sprintf("%s; every node must run with the same --admin-token", err)}
	}
	return toHTTPError(err)
}

// forced reports whether the call asks, with ?force=true, to go through a
// check that would refuse it (409).
func forced(ctx *fasthttp.RequestCtx) (bool, error) {
	f := ctx.QueryArgs().Peek("force")
	if len(f) == 0 {
		return false, nil
	}
	force, err := strconv.ParseBool(string(f))
	if err != nil {
		return false, badRequest("force=%q: use true or false", f)
	}
	return force, nil
}

// checkSignature refuses (409) a write that would send model name's
// unversioned requests to version v when v's inputs or outputs differ
// from production's: every client still sending what production takes
// would get 400. A version this node has not loaded is read from its
// blob here (a trial load); the write goes through when it cannot tell
// (the blob is still being fetched). ?force=true lets it through too, for
// clients that have moved to the new signature.
func (s *Server) checkSignature(cp *controlPlane, ctx *fasthttp.RequestCtx, name string, v int64, doing string) error {
	if force, err := forced(ctx); force || err != nil {
		return err
	}
	if st, _ := cp.node.FSM().State(); st.Models[name] != nil && st.Models[name].Production() == v {
		// Production itself: nothing changes for clients, and no trial
		// load of its blob is needed to tell.
		return nil
	}
	in, out, ok, err := s.signatureOf(cp, name, v)
	if err != nil || !ok {
		return err
	}
	return s.signatureConflict(cp, name, in, out, fmt.Sprintf("%s version %d", doing, v), fmt.Sprintf("version %d's", v), "infergate models promote or experiment --force")
}

// signatureOf returns the inputs and outputs of version v of model name:
// those this node loaded, else those of the trial load of its blob here;
// ok is false when neither can tell.
func (s *Server) signatureOf(cp *controlPlane, name string, v int64) (in, out []oip.TensorMetadata, ok bool, err error) {
	if m := s.repo.Model(name); m != nil {
		if lv := m.Version(v); lv != nil {
			return lv.Inputs, lv.Outputs, true, nil
		}
	}
	in, out, ok, err = cp.node.VersionSignature(name, v)
	if errors.Is(err, cluster.ErrTrialLoadsBusy) {
		return nil, nil, false, clusterError(err)
	}
	if err != nil {
		return nil, nil, false, &httpError{code: fasthttp.StatusConflict, err: err,
			msg: fmt.Sprintf("cannot tell whether version %d of model %q takes what production takes: %s; add ?force=true to write it anyway", v, name, err)}
	}
	return in, out, ok, nil
}

// signatureConflict refuses (409) a write that would send model name's
// unversioned requests to a version of inputs in and outputs out, when
// they differ from production's. doing says what the write does, theirs
// whose signature the clients may have moved to, and flag the command's
// flag that forces it.
func (s *Server) signatureConflict(cp *controlPlane, name string, in, out []oip.TensorMetadata, doing, theirs, flag string) error {
	st, _ := cp.node.FSM().State()
	cm := st.Models[name]
	if cm == nil {
		return nil
	}
	prod := cm.Production()
	if prod == 0 {
		return nil
	}
	pin, pout, ok, err := s.signatureOf(cp, name, prod)
	if he, isHE := err.(*httpError); isHE && he.code == fasthttp.StatusTooManyRequests {
		// Cannot tell yet: the trial loads are all taken (429). Going
		// through would skip the check it is waiting for.
		return err
	}
	if err != nil || !ok {
		// Cannot tell: production's blob is not here, or does not load
		// here (a broken production, which the write may be replacing).
		return nil
	}
	if diff := signatureDiff("input", pin, in) + signatureDiff("output", pout, out); diff != "" {
		return &httpError{code: fasthttp.StatusConflict, msg: fmt.Sprintf(
			"%s of model %q would change what clients send and get:%s; requests that fit production (version %d) would fail. If the clients have moved to %s, add ?force=true (%s)",
			doing, name, diff, prod, theirs, flag)}
	}
	return nil
}

// signatureDiff describes how the tensors want differ from have, or "".
func signatureDiff(what string, have, want []oip.TensorMetadata) string {
	var b strings.Builder
	byName := map[string]oip.TensorMetadata{}
	for _, t := range want {
		byName[t.Name] = t
	}
	for _, h := range have {
		w, ok := byName[h.Name]
		switch {
		case !ok:
			fmt.Fprintf(&b, " %s %q would be gone;", what, h.Name)
		case w.Datatype != h.Datatype || !slices.Equal(w.Shape, h.Shape):
			fmt.Fprintf(&b, " %s %q would be %s %s instead of %s %s;", what, h.Name, w.Datatype, oip.FormatShape(w.Shape), h.Datatype, oip.FormatShape(h.Shape))
		}
		delete(byName, h.Name)
	}
	for _, w := range want {
		if _, ok := byName[w.Name]; ok {
			fmt.Fprintf(&b, " %s %q would be new;", what, w.Name)
		}
	}
	return strings.TrimSuffix(b.String(), ";")
}
