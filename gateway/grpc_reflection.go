package gateway

import (
	"fmt"

	"github.com/infergate/infergate/oip"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// registerReflection registers gRPC's reflection service on srv, in its
// v1 and v1alpha versions, so that grpcurl, Postman and the like list,
// describe and call the protocol's service without a .proto file: its
// descriptor is oip.GRPCFile, those of the other services registered on
// srv (health, reflection) the protobuf library's. It tells the shape of
// the API, which the protocol publishes, and nothing of the models (their
// names and tensors are ModelMetadata's, which the inference token
// guards).
func registerReflection(srv *grpc.Server) {
	opts := reflection.ServerOptions{Services: srv, DescriptorResolver: grpcDescriptors}
	reflectionv1.RegisterServerReflectionServer(srv, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(srv, reflection.NewServer(opts))
}

// grpcDescriptors resolves the protocol's descriptors, then the protobuf
// library's registry.
var grpcDescriptors = func() descriptorResolver {
	files := new(protoregistry.Files)
	if err := files.RegisterFile(oip.GRPCFile()); err != nil {
		panic(fmt.Sprintf("BUG: the protocol's descriptor does not register: %v", err))
	}
	return descriptorResolver{files}
}()

// descriptorResolver looks a descriptor up in own, else in the protobuf
// library's registry of generated code.
type descriptorResolver struct{ own *protoregistry.Files }

func (r descriptorResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if f, err := r.own.FindFileByPath(path); err == nil {
		return f, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r descriptorResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.own.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}
