package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// repoCall calls RepositoryModelLoad or RepositoryModelUnload (method)
// for model with params (see pbtest.RepositoryRequest).
func (c *grpcClient) repoCall(ctx context.Context, method, model string, params map[string]any) error {
	_, err := c.call(ctx, method, pbtest.RepositoryRequest(method+"Request", model, params), method+"Response")
	return err
}

// httpMessage is the message of the error body of r, which must not be
// 200.
func httpMessage(t *testing.T, r response) string {
	t.Helper()
	if r.code == fasthttp.StatusOK {
		t.Fatalf("got 200 %s; want an error", r.body)
	}
	msg, err := errorMessage(r.body)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// checkSame checks that err is a gRPC status of code with exactly msg,
// HTTP's message for the same call.
func checkSame(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code || st.Message() != msg {
		t.Fatalf("%s: got %v; want %s with HTTP's message %q", what, err, code, msg)
	}
}

// modelReady asks ModelReady of model over gRPC.
func (c *grpcClient) modelReady(t *testing.T, ctx context.Context, model string) bool {
	t.Helper()
	out, err := c.call(ctx, "ModelReady", modelRequest("ModelReadyRequest", model, ""), "ModelReadyResponse")
	if err != nil {
		t.Fatalf("ModelReady %s: %v", model, err)
	}
	return field(out, "ready").Bool()
}

// TestGRPCRepositoryModelLoad checks that RepositoryModelLoad loads a
// model with the configuration in its "config" parameter, in Triton's
// spelling or infergate's, as POST /v2/repository/models/{m}/load does:
// what ModelConfig and GET .../config report changes; a bad configuration
// and an unknown model are refused with HTTP's messages.
func TestGRPCRepositoryModelLoad(t *testing.T) {
	s, c := tritonTestServer(t, gateway.DefaultConfig())
	ctx := context.Background()
	f := func(config string, wantBatch, wantInstances int) {
		t.Helper()
		if err := c.repoCall(ctx, "RepositoryModelLoad", "ctr", map[string]any{"config": config}); err != nil {
			t.Fatalf("RepositoryModelLoad ctr with %s: %v", config, err)
		}
		checkBatchAndInstances(t, s, c, wantBatch, wantInstances)
	}
	checkBatchAndInstances(t, s, c, 8, 2) // tritonTestServer's
	f(`{"max_batch_size":4,"instance_group":[{"count":3,"kind":"KIND_CPU"}]}`, 4, 3)
	f(`{"max_batch_size":2,"instances":1}`, 2, 1)

	for _, config := range []string{`{"max_batch_size":"x"}`, `{`, `{"max_batch_size":-1}`} {
		body, err := json.Marshal(map[string]any{"parameters": map[string]string{"config": config}})
		if err != nil {
			t.Fatal(err)
		}
		want := httpMessage(t, s.post(t, "/v2/repository/models/ctr/load", body))
		err = c.repoCall(ctx, "RepositoryModelLoad", "ctr", map[string]any{"config": config})
		checkSame(t, "a load with "+config, err, codes.InvalidArgument, want)
	}
	checkBatchAndInstances(t, s, c, 2, 1) // the refused loads changed nothing

	want := httpMessage(t, s.post(t, "/v2/repository/models/nope/load", nil))
	checkSame(t, "a load of an unknown model", c.repoCall(ctx, "RepositoryModelLoad", "nope", nil), codes.NotFound, want)
	err := c.repoCall(ctx, "RepositoryModelLoad", "ctr", map[string]any{"config": true})
	checkCode(t, err, codes.InvalidArgument, `parameter "config" is bool_param true`)

	metricsText := s.metricsText(t)
	checkMetric(t, metricsText, `infergate_grpc_requests_total{method="RepositoryModelLoad",code="OK"}`, 2)
	checkMetric(t, metricsText, `infergate_grpc_requests_total{method="RepositoryModelLoad",code="InvalidArgument"}`, 4)
	checkMetric(t, metricsText, `infergate_grpc_requests_total{method="RepositoryModelLoad",code="NotFound"}`, 1)
	if l := `admin: 127.0.0.1 (gRPC) loaded model "ctr" through the repository API with a configuration given in the call`; strings.Count(s.log.String(), l) != 2 {
		t.Fatalf("the log has %d lines %q; want 2 (one per load):\n%s", strings.Count(s.log.String(), l), l, s.log.String())
	}
}

// checkBatchAndInstances checks that ctr's max_batch_size and instance
// count are as wanted, over gRPC (ModelConfig) and over HTTP (GET
// .../config).
func checkBatchAndInstances(t *testing.T, s *testServer, c *grpcClient, wantBatch, wantInstances int) {
	t.Helper()
	out, err := c.call(context.Background(), "ModelConfig", modelRequest("ModelConfigRequest", "ctr", ""), "ModelConfigResponse")
	if err != nil {
		t.Fatal(err)
	}
	got := protoJSON(t, out, false)["config"].(map[string]any)
	group := got["instance_group"].([]any)[0].(map[string]any)
	hgot := s.httpJSON(t, "GET", "/v2/models/ctr/config", nil).(map[string]any)
	hgroup := hgot["instance_group"].([]any)[0].(map[string]any)
	for _, v := range []struct {
		what      string
		got, want any
	}{
		{"max_batch_size over gRPC", got["max_batch_size"], wantBatch},
		{"instances over gRPC", group["count"], wantInstances},
		{"max_batch_size over HTTP", hgot["max_batch_size"], wantBatch},
		{"instances over HTTP", hgroup["count"], wantInstances},
	} {
		if fmt.Sprint(v.got) != fmt.Sprint(v.want) {
			t.Fatalf("ctr's %s: got %v; want %v", v.what, v.got, v.want)
		}
	}
}

// TestGRPCRepositoryModelUnload checks that RepositoryModelUnload unloads
// a model as POST /v2/repository/models/{m}/unload does (ModelReady is
// false after it, and a load brings it back), and refuses an unknown
// model and a model the cluster serves with HTTP's messages.
func TestGRPCRepositoryModelUnload(t *testing.T) {
	s, c := tritonTestServer(t, gateway.DefaultConfig())
	ctx := context.Background()
	if !c.modelReady(t, ctx, "fixed") {
		t.Fatal("fixed is not ready before its unload")
	}
	if err := c.repoCall(ctx, "RepositoryModelUnload", "fixed", map[string]any{"unload_dependents": true}); err != nil {
		t.Fatalf("RepositoryModelUnload fixed: %v", err)
	}
	if c.modelReady(t, ctx, "fixed") {
		t.Fatal("fixed is ready after its unload")
	}
	if r := s.do(t, "GET", "/v2/models/fixed/ready", nil); r.code == fasthttp.StatusOK {
		t.Fatalf("GET /v2/models/fixed/ready after its unload: %s", r)
	}
	if !c.modelReady(t, ctx, "ctr") {
		t.Fatal("ctr is not ready after fixed's unload")
	}
	if err := c.repoCall(ctx, "RepositoryModelLoad", "fixed", nil); err != nil {
		t.Fatalf("RepositoryModelLoad fixed: %v", err)
	}
	if !c.modelReady(t, ctx, "fixed") {
		t.Fatal("fixed is not ready after it was loaded again")
	}

	want := httpMessage(t, s.post(t, "/v2/repository/models/nope/unload", nil))
	checkSame(t, "an unload of an unknown model", c.repoCall(ctx, "RepositoryModelUnload", "nope", nil), codes.NotFound, want)
	err := c.repoCall(ctx, "RepositoryModelUnload", "ctr", map[string]any{"unload_dependents": "yes"})
	checkCode(t, err, codes.InvalidArgument, `parameter "unload_dependents" is a string_param`)
	checkMetric(t, s.metricsText(t), `infergate_grpc_requests_total{method="RepositoryModelUnload",code="OK"}`, 1)
	if l := `admin: 127.0.0.1 (gRPC) unloaded model "fixed" through the repository API`; !strings.Contains(s.log.String(), l) {
		t.Fatalf("no line %q in the log:\n%s", l, s.log.String())
	}
}

// TestGRPCRepositoryModelUnloadClusterModel: a model the cluster serves
// is not unloaded, FAILED_PRECONDITION with the message of HTTP's 409,
// and goes on serving.
func TestGRPCRepositoryModelUnloadClusterModel(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	c := s.serveGRPC(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+adminToken)
	want := httpMessage(t, s.admin(t, "POST", "/v2/repository/models/ctr/unload", nil))
	checkSame(t, "an unload of the cluster's ctr", c.repoCall(ctx, "RepositoryModelUnload", "ctr", nil), codes.FailedPrecondition, want)
	if !c.modelReady(t, ctx, "ctr") {
		t.Fatal("ctr is not ready after a refused unload")
	}
}

// TestGRPCRepositoryAdminToken checks that with --admin-token the load
// and unload calls need it (metadata authorization: Bearer), with the
// codes of HTTP's statuses for the same calls (401: UNAUTHENTICATED), and
// that the inference token is not it.
func TestGRPCRepositoryAdminToken(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	cfg.InferenceToken = "s3cret"
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	with := func(token string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	for _, method := range []string{"RepositoryModelLoad", "RepositoryModelUnload"} {
		action := strings.ToLower(strings.TrimPrefix(method, "RepositoryModel"))
		if r := s.post(t, "/v2/repository/models/ctr/"+action, nil); r.code != fasthttp.StatusUnauthorized {
			t.Fatalf("HTTP %s without the token: %s; want 401", action, r)
		}
		checkCode(t, c.repoCall(ctx, method, "ctr", nil), codes.Unauthenticated, "needs the admin token (--admin-token)")
		// gRPC's first: the log of a wrong token is once a minute, over
		// HTTP and gRPC together.
		checkCode(t, c.repoCall(with("wrong"), method, "ctr", nil), codes.Unauthenticated, "not this server's: every node of a cluster")
		if r := s.post(t, "/v2/repository/models/ctr/"+action, nil, "Authorization", "Bearer wrong"); r.code != fasthttp.StatusUnauthorized {
			t.Fatalf("HTTP %s with a wrong token: %s; want 401", action, r)
		}
		checkCode(t, c.repoCall(with("s3cret"), method, "nope", nil), codes.Unauthenticated, "not this server's")
	}
	right := with(adminToken)
	if !c.modelReady(t, with("s3cret"), "ctr") {
		t.Fatal("ctr is not ready after the refused calls")
	}
	if err := c.repoCall(right, "RepositoryModelUnload", "ctr", nil); err != nil {
		t.Fatalf("RepositoryModelUnload with the admin token: %v", err)
	}
	if c.modelReady(t, with("s3cret"), "ctr") {
		t.Fatal("ctr is ready after its unload")
	}
	// With the token, a proxy in between changes nothing, as over HTTP.
	proxied := metadata.AppendToOutgoingContext(right, "x-forwarded-for", "203.0.113.9")
	if err := c.repoCall(proxied, "RepositoryModelLoad", "ctr", nil); err != nil {
		t.Fatalf("RepositoryModelLoad with the admin token through a proxy: %v", err)
	}
	if !c.modelReady(t, with("s3cret"), "ctr") {
		t.Fatal("ctr is not ready after its load")
	}
	if l := "admin: refused gRPC RepositoryModelLoad from 127.0.0.1: its token is not this server's --admin-token"; !strings.Contains(s.log.String(), l) {
		t.Fatalf("no line %q in the log:\n%s", l, s.log.String())
	}
}

// TestGRPCRepositoryRefusesProxiedClientsWithoutAToken: with no admin
// token, a loopback client whose call carries a proxy's metadata (which
// names another client) is refused, PERMISSION_DENIED as HTTP's 403,
// naming the key and --admin-token; without it the call is served.
func TestGRPCRepositoryRefusesProxiedClientsWithoutAToken(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	for _, key := range []string{"x-forwarded-for", "forwarded", "x-real-ip"} {
		proxied := metadata.AppendToOutgoingContext(ctx, key, "203.0.113.9")
		for _, method := range []string{"RepositoryModelLoad", "RepositoryModelUnload"} {
			err := c.repoCall(proxied, method, "ctr", nil)
			checkCode(t, err, codes.PermissionDenied, "came through a proxy (it carries "+key+" metadata); start the server with --admin-token")
		}
	}
	if !c.modelReady(t, ctx, "ctr") {
		t.Fatal("ctr is not ready after the refused calls")
	}
	if err := c.repoCall(ctx, "RepositoryModelUnload", "ctr", nil); err != nil {
		t.Fatalf("RepositoryModelUnload from this host: %v", err)
	}
	if c.modelReady(t, ctx, "ctr") {
		t.Fatal("ctr is ready after its unload")
	}
}

// TestGRPCRepositoryRefusesRemoteClientsWithoutAToken: with no admin
// token, a client that is not on a loopback address is refused,
// PERMISSION_DENIED naming --admin-token. It needs an address of this
// host other than a loopback one.
func TestGRPCRepositoryRefusesRemoteClientsWithoutAToken(t *testing.T) {
	var ip net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			ip = n.IP
			break
		}
	}
	if ip == nil {
		t.Skip("this host has no IPv4 address but loopback ones")
	}
	s := startDemo(t, gateway.DefaultConfig(), false)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	s.serveGRPCOn(ln)
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &grpcClient{conn: conn}
	ctx := context.Background()
	for _, method := range []string{"RepositoryModelLoad", "RepositoryModelUnload"} {
		checkCode(t, c.repoCall(ctx, method, "ctr", nil), codes.PermissionDenied,
			"answers only loopback clients when the server has no admin token; start it with --admin-token")
	}
	if !c.modelReady(t, ctx, "ctr") {
		t.Fatal("ctr is not ready after the refused calls")
	}
}
