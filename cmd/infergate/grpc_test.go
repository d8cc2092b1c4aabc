package main

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/pbtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

var grpcLine = regexp.MustCompile(`gRPC \(.*\) on (\S+)`)

// TestServeGRPC starts `serve --grpc` and calls it as a client of the
// protocol's gRPC service would: health, then an inference, then a
// SIGTERM that stops both front doors in order.
func TestServeGRPC(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr", "--grpc", "127.0.0.1:0")
	m := grpcLine.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("the log does not say where gRPC listens:\n%s", s.stderr.String())
	}
	conn, err := grpc.NewClient("passthrough:///"+m[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: got %v, %v; want SERVING", h, err)
	}
	x := make([]float32, 64)
	req := pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}, FP32: x}}, nil, nil, nil)
	out := pbtest.New("ModelInferResponse")
	if err := conn.Invoke(ctx, "/inference.GRPCInferenceService/ModelInfer", req, out); err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(out)
	resp, err := pbtest.DecodeInferResponse(b)
	if err != nil || len(resp.Outputs) != 1 || len(resp.Outputs[0].Raw) != 4 {
		t.Fatalf("got %+v, %v; want one score", resp, err)
	}

	s.cmd.Process.Signal(syscall.SIGTERM)
	if err, exited := s.waitExit(30 * time.Second); !exited || err != nil {
		t.Fatalf("after SIGTERM: exited %v, %v; want a clean exit", exited, err)
	}
	if log := s.stderr.String(); !strings.Contains(log, "HTTP and gRPC servers stopped in") {
		t.Fatalf("the shutdown's log does not say gRPC stopped:\n%s", log)
	}
}

// TestBenchGRPC loads a gateway over gRPC with `bench --grpc`, closed and
// open loop and an overload step: every call answered and checked, the
// overload's refusals counted as shed (UNAVAILABLE with retry-after),
// never as errors.
func TestBenchGRPC(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--grpc", "127.0.0.1:0")
	m := grpcLine.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("the log does not say where gRPC listens:\n%s", s.stderr.String())
	}
	// ModelInfer calls, then Triton's ModelStreamInfer: closed and open
	// loop, and shed.
	for _, encoding := range []string{"grpc", "grpc-stream"} {
		args := []string{"bench", "--target", "http://" + s.addr, "--grpc", m[1], "--model", "ranker"}
		if encoding == "grpc-stream" {
			args = append(args, "--grpc-stream")
		}
		_, rep := runBenchCommand(t, append(args, "--rows", "2", "--concurrency", "4", "--rate", "200", "--duration", "300ms", "--warmup", "100ms")...)
		if len(rep.Runs) != 2 {
			t.Fatalf("%s runs %+v; want 2", encoding, rep.Runs)
		}
		for i := range rep.Runs {
			r := &rep.Runs[i]
			checkRun(t, r)
			if r.Encoding != encoding || r.Errors != 0 || r.RowsPerRequest != 2 || r.Flagged != "" {
				t.Fatalf("%s: encoding %q, %d errors %v, rows %d, flagged %q; want %s, none, 2, none", r.Name, r.Encoding, r.Errors, r.ErrorKinds, r.RowsPerRequest, r.Flagged, encoding)
			}
		}
		_, rep = runBenchCommand(t, append(args, "--rows", "16", "--overload", "3", "--duration", "500ms", "--warmup", "200ms")...)
		if len(rep.Runs) != 2 || rep.Runs[1].Shed == nil {
			t.Fatalf("%s runs %+v; want a closed-loop run and an overload run", encoding, rep.Runs)
		}
		if r := &rep.Runs[1]; len(r.ErrorKinds) != 0 {
			t.Fatalf("overload over %s: errors %v; want every refusal shed with retry-after", encoding, r.ErrorKinds)
		}
	}

	out, err := exec.Command(binPath, "bench", "--target", "http://"+s.addr, "--grpc", s.addr, "--model", "ctr",
		"--concurrency", "1", "--duration", "100ms", "--warmup", "0s", "--quiet").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is the gateway serving gRPC there?") {
		t.Fatalf("bench --grpc at the HTTP port: %v\n%s; want an error that says where to look", err, out)
	}
}
