package gateway_test

import (
	"context"
	"slices"
	"testing"

	"github.com/infergate/infergate/gateway"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestGRPCReflection: gRPC's reflection service lists the protocol's
// service beside health and itself, and gives the file that describes it,
// its methods and the messages they take, as grpcurl asks for them.
func TestGRPCReflection(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	stream, err := reflectionv1.NewServerReflectionClient(c.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionv1.ServerReflectionRequest) *reflectionv1.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("%v: %s", req, e.ErrorMessage)
		}
		return resp
	}

	var names []string
	for _, svc := range ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}).
		GetListServicesResponse().GetService() {
		names = append(names, svc.Name)
	}
	slices.Sort(names)
	want := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "inference.GRPCInferenceService"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v; want %v", names, want)
	}

	for _, symbol := range []string{"inference.GRPCInferenceService", "inference.ModelInferRequest", "grpc.health.v1.Health"} {
		files := ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}}).
			GetFileDescriptorResponse().GetFileDescriptorProto()
		if len(files) == 0 {
			t.Fatalf("no file for %s", symbol)
		}
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(files[0], fd); err != nil {
			t.Fatal(err)
		}
		if symbol != "inference.GRPCInferenceService" {
			continue
		}
		var methods []string
		for _, m := range fd.GetService()[0].GetMethod() {
			methods = append(methods, m.GetName()+" "+m.GetInputType()+" "+m.GetOutputType())
		}
		for _, m := range []string{
			"ModelInfer .inference.ModelInferRequest .inference.ModelInferResponse",
			"ModelStreamInfer .inference.ModelInferRequest .inference.ModelStreamInferResponse",
			"RepositoryModelLoad .inference.RepositoryModelLoadRequest .inference.RepositoryModelLoadResponse",
		} {
			if !slices.Contains(methods, m) {
				t.Fatalf("methods %v; want %q among them", methods, m)
			}
		}
	}
}
