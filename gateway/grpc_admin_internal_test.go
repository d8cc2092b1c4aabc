package gateway

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// TestGRPCAuthorizeAdminPeers: with no admin token, the repository calls
// answer clients on this host only, by the address gRPC hands a call
// (a connAddr around the connection's), and not through a proxy.
func TestGRPCAuthorizeAdminPeers(t *testing.T) {
	s := &Server{}
	f := func(addr net.Addr, md metadata.MD, want codes.Code, fragment string) {
		t.Helper()
		ctx := context.Background()
		if addr != nil {
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr})
		}
		if md != nil {
			ctx = metadata.NewIncomingContext(ctx, md)
		}
		err := s.grpcAuthorizeAdmin(ctx, grpcRepositoryModelLoad)
		got := codes.OK
		msg := ""
		if err != nil {
			he := toHTTPError(err)
			got, msg = grpcCode(he), he.msg
		}
		if got != want || !strings.Contains(msg, fragment) {
			t.Fatalf("%v %v: got %s %q; want %s with %q", addr, md, got, msg, want, fragment)
		}
	}
	tcp := func(ip string) net.Addr { return connAddr{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}} }
	f(tcp("127.0.0.1"), nil, codes.OK, "")
	f(tcp("127.0.0.2"), nil, codes.OK, "")
	f(tcp("::1"), nil, codes.OK, "")
	f(connAddr{Addr: &net.UnixAddr{Name: "@", Net: "unix"}}, nil, codes.OK, "") // on this host, as HTTP has it
	f(tcp("192.0.2.7"), nil, codes.PermissionDenied, "answers only loopback clients when the server has no admin token; start it with --admin-token")
	f(tcp("::ffff:192.0.2.7"), nil, codes.PermissionDenied, "--admin-token")
	f(&net.TCPAddr{IP: net.ParseIP("192.0.2.7")}, nil, codes.PermissionDenied, "--admin-token") // not wrapped
	f(nil, nil, codes.PermissionDenied, "--admin-token")                                        // no peer: not known to be local
	f(tcp("127.0.0.1"), metadata.Pairs("x-real-ip", "203.0.113.9"), codes.PermissionDenied, "it carries x-real-ip metadata")
	f(tcp("127.0.0.1"), metadata.Pairs("x-unit-id", "u1"), codes.OK, "")
}
