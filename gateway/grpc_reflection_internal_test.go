package gateway

import (
	"slices"
	"testing"

	"github.com/infergate/infergate/oip"
	"google.golang.org/grpc"
)

// TestGRPCDescriptorMatchesService: the descriptor gRPC's reflection
// gives (oip.GRPCFile) has the methods the server serves, no more and no
// fewer, each streaming as it is served.
func TestGRPCDescriptorMatchesService(t *testing.T) {
	srv := grpc.NewServer()
	srv.RegisterService((&Server{}).grpcServiceDesc(), nil)
	var served []string
	for _, m := range srv.GetServiceInfo()[oip.GRPCService].Methods {
		served = append(served, m.Name+streamSuffix(m.IsClientStream, m.IsServerStream))
	}
	sd := oip.GRPCFile().Services().ByName("GRPCInferenceService")
	if sd == nil || string(sd.FullName()) != oip.GRPCService {
		t.Fatalf("the descriptor has no service %s", oip.GRPCService)
	}
	var described []string
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		described = append(described, string(m.Name())+streamSuffix(m.IsStreamingClient(), m.IsStreamingServer()))
	}
	slices.Sort(served)
	slices.Sort(described)
	if !slices.Equal(served, described) {
		t.Fatalf("served %v; the descriptor has %v", served, described)
	}
}

func streamSuffix(client, server bool) string {
	switch {
	case client && server:
		return " (bidirectional)"
	case client || server:
		return " (one way)"
	}
	return ""
}
