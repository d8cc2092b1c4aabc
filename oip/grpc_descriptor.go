package oip

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The protocol's gRPC service and its messages described to the
// protobuf runtime, built from the field numbers of the protocol's .proto
// files (KServe's grpc_predict_v2.proto, Triton's grpc_service.proto and
// model_config.proto): what gRPC's reflection service gives clients such
// as grpcurl, and what tests encode and decode with the protobuf library
// (internal/pbtest) to check the hand-written codec in grpc.go, whose
// field numbers are written down apart. Triton's messages have the
// fields infergate sends or reads.

// GRPCFile returns the descriptor of the protocol's gRPC service,
// inference.GRPCInferenceService, and of its messages.
func GRPCFile() protoreflect.FileDescriptor { return grpcFile }

type kind = descriptorpb.FieldDescriptorProto_Type

const (
	tBool    = descriptorpb.FieldDescriptorProto_TYPE_BOOL
	tInt32   = descriptorpb.FieldDescriptorProto_TYPE_INT32
	tInt64   = descriptorpb.FieldDescriptorProto_TYPE_INT64
	tUint32  = descriptorpb.FieldDescriptorProto_TYPE_UINT32
	tUint64  = descriptorpb.FieldDescriptorProto_TYPE_UINT64
	tFloat   = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
	tDouble  = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
	tString  = descriptorpb.FieldDescriptorProto_TYPE_STRING
	tBytes   = descriptorpb.FieldDescriptorProto_TYPE_BYTES
	tMessage = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	tEnum    = descriptorpb.FieldDescriptorProto_TYPE_ENUM
	optional = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	repeated = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
)

func field(name string, num int32, t kind, label descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
	f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Type: t.Enum(), Label: label.Enum(), JsonName: proto.String(jsonName(name))}
	if typeName != "" {
		f.TypeName = proto.String(typeName)
	}
	return f
}

func one(name string, num int32, t kind) *descriptorpb.FieldDescriptorProto {
	return field(name, num, t, optional, "")
}

func many(name string, num int32, t kind) *descriptorpb.FieldDescriptorProto {
	return field(name, num, t, repeated, "")
}

func msgs(name string, num int32, typeName string) *descriptorpb.FieldDescriptorProto {
	return field(name, num, tMessage, repeated, typeName)
}

func msg(name string, num int32, typeName string) *descriptorpb.FieldDescriptorProto {
	return field(name, num, tMessage, optional, typeName)
}

// enumField returns field num of the enum type typeName.
func enumField(name string, num int32, typeName string) *descriptorpb.FieldDescriptorProto {
	return field(name, num, tEnum, optional, typeName)
}

// enum describes an enum type whose values are named in order from 0.
func enum(name string, values ...string) *descriptorpb.EnumDescriptorProto {
	e := &descriptorpb.EnumDescriptorProto{Name: proto.String(name)}
	for i, v := range values {
		e.Value = append(e.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(v), Number: proto.Int32(int32(i))})
	}
	return e
}

func message(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
	return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
}

// paramsMap returns the map<string, InferParameter> field num and its
// entry type, named as protoc names them.
func paramsMap(parent string, num int32) (*descriptorpb.FieldDescriptorProto, *descriptorpb.DescriptorProto) {
	entry := message("ParametersEntry", one("key", 1, tString), msg("value", 2, ".inference.InferParameter"))
	entry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
	return msgs("parameters", num, parent+".ParametersEntry"), entry
}

func withParams(m *descriptorpb.DescriptorProto, full string, num int32) *descriptorpb.DescriptorProto {
	f, e := paramsMap(full, num)
	m.Field = append(m.Field, f)
	m.NestedType = append(m.NestedType, e)
	return m
}

var grpcFile = func() protoreflect.FileDescriptor {
	param := message("InferParameter",
		one("bool_param", 1, tBool), one("int64_param", 2, tInt64), one("string_param", 3, tString),
		one("double_param", 4, tDouble), one("uint64_param", 5, tUint64))
	oneof(param, "parameter_choice")
	contents := message("InferTensorContents",
		many("bool_contents", 1, tBool), many("int_contents", 2, tInt32), many("int64_contents", 3, tInt64),
		many("uint_contents", 4, tUint32), many("uint64_contents", 5, tUint64), many("fp32_contents", 6, tFloat),
		many("fp64_contents", 7, tDouble), many("bytes_contents", 8, tBytes))
	tensor := func(name, full string) *descriptorpb.DescriptorProto {
		m := message(name, one("name", 1, tString), one("datatype", 2, tString), many("shape", 3, tInt64))
		m = withParams(m, full, 4)
		m.Field = append(m.Field, msg("contents", 5, ".inference.InferTensorContents"))
		return m
	}
	reqOut := withParams(message("InferRequestedOutputTensor", one("name", 1, tString)),
		".inference.ModelInferRequest.InferRequestedOutputTensor", 2)
	req := message("ModelInferRequest", one("model_name", 1, tString), one("model_version", 2, tString), one("id", 3, tString))
	req = withParams(req, ".inference.ModelInferRequest", 4)
	req.Field = append(req.Field,
		msgs("inputs", 5, ".inference.ModelInferRequest.InferInputTensor"),
		msgs("outputs", 6, ".inference.ModelInferRequest.InferRequestedOutputTensor"),
		many("raw_input_contents", 7, tBytes))
	req.NestedType = append(req.NestedType, tensor("InferInputTensor", ".inference.ModelInferRequest.InferInputTensor"), reqOut)
	resp := message("ModelInferResponse", one("model_name", 1, tString), one("model_version", 2, tString), one("id", 3, tString))
	resp = withParams(resp, ".inference.ModelInferResponse", 4)
	resp.Field = append(resp.Field,
		msgs("outputs", 5, ".inference.ModelInferResponse.InferOutputTensor"),
		many("raw_output_contents", 6, tBytes))
	resp.NestedType = append(resp.NestedType, tensor("InferOutputTensor", ".inference.ModelInferResponse.InferOutputTensor"))
	tmeta := withParams(message("TensorMetadata", one("name", 1, tString), one("datatype", 2, tString), many("shape", 3, tInt64)),
		".inference.ModelMetadataResponse.TensorMetadata", 4)
	mmeta := message("ModelMetadataResponse", one("name", 1, tString), many("versions", 2, tString), one("platform", 3, tString),
		msgs("inputs", 4, ".inference.ModelMetadataResponse.TensorMetadata"),
		msgs("outputs", 5, ".inference.ModelMetadataResponse.TensorMetadata"))
	mmeta.NestedType = []*descriptorpb.DescriptorProto{tmeta}
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("infergate/inference.proto"),
		Package: proto.String("inference"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			message("ServerLiveRequest"), message("ServerLiveResponse", one("live", 1, tBool)),
			message("ServerReadyRequest"), message("ServerReadyResponse", one("ready", 1, tBool)),
			message("ModelReadyRequest", one("name", 1, tString), one("version", 2, tString)),
			message("ModelReadyResponse", one("ready", 1, tBool)),
			message("ServerMetadataRequest"),
			message("ServerMetadataResponse", one("name", 1, tString), one("version", 2, tString), many("extensions", 3, tString)),
			message("ModelMetadataRequest", one("name", 1, tString), one("version", 2, tString)),
			mmeta, req, resp, param, contents,
			message("ModelStreamInferResponse", one("error_message", 1, tString), msg("infer_response", 2, ".inference.ModelInferResponse")),
		},
	}
	addTriton(fd)
	method := func(name, in, out string, streaming bool) *descriptorpb.MethodDescriptorProto {
		m := &descriptorpb.MethodDescriptorProto{Name: proto.String(name), InputType: proto.String(".inference." + in),
			OutputType: proto.String(".inference." + out)}
		if streaming {
			m.ClientStreaming, m.ServerStreaming = proto.Bool(true), proto.Bool(true)
		}
		return m
	}
	plain := func(name string) *descriptorpb.MethodDescriptorProto {
		return method(name, name+"Request", name+"Response", false)
	}
	fd.Service = []*descriptorpb.ServiceDescriptorProto{{
		Name: proto.String("GRPCInferenceService"),
		Method: []*descriptorpb.MethodDescriptorProto{
			plain("ServerLive"), plain("ServerReady"), plain("ModelReady"), plain("ServerMetadata"), plain("ModelMetadata"),
			plain("ModelInfer"), method("ModelStreamInfer", "ModelInferRequest", "ModelStreamInferResponse", true),
			plain("ModelConfig"), plain("ModelStatistics"), plain("RepositoryIndex"),
			plain("RepositoryModelLoad"), plain("RepositoryModelUnload"),
			plain("SystemSharedMemoryStatus"), plain("SystemSharedMemoryRegister"), plain("SystemSharedMemoryUnregister"),
			plain("CudaSharedMemoryStatus"), plain("CudaSharedMemoryRegister"), plain("CudaSharedMemoryUnregister"),
			plain("TraceSetting"), plain("LogSettings"),
		},
	}}
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		panic(fmt.Sprintf("BUG: the descriptor of the protocol is wrong: %v", err))
	}
	return f
}()

// addTriton adds to fd the messages of Triton's extension methods that
// infergate answers (ModelConfig, ModelStatistics, RepositoryIndex,
// RepositoryModelLoad, RepositoryModelUnload, and the system shared
// memory's status, register and unregister), with
// the field numbers of Triton's grpc_service.proto and model_config.proto
// (triton-inference-server/common, protobuf/): the fields infergate
// sends, and those the protobuf library needs to read an answer as a
// Triton client does. ModelConfig's scheduling_choice oneof has the one
// scheduler infergate has, dynamic_batching.
func addTriton(fd *descriptorpb.FileDescriptorProto) {
	const p = ".inference."
	input := message("ModelInput", one("name", 1, tString), enumField("data_type", 2, p+"DataType"), many("dims", 4, tInt64))
	output := message("ModelOutput", one("name", 1, tString), enumField("data_type", 2, p+"DataType"), many("dims", 3, tInt64))
	group := message("ModelInstanceGroup", one("name", 1, tString), one("count", 2, tInt32), many("gpus", 3, tInt32),
		enumField("kind", 4, p+"ModelInstanceGroup.Kind"))
	group.EnumType = []*descriptorpb.EnumDescriptorProto{enum("Kind", "KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL")}
	batching := message("ModelDynamicBatching", many("preferred_batch_size", 1, tInt32), one("max_queue_delay_microseconds", 2, tUint64),
		one("priority_levels", 4, tUint64), one("default_priority_level", 5, tUint64))
	policy := message("ModelVersionPolicy", msg("latest", 1, p+"ModelVersionPolicy.Latest"), msg("all", 2, p+"ModelVersionPolicy.All"),
		msg("specific", 3, p+"ModelVersionPolicy.Specific"))
	oneof(policy, "policy_choice")
	policy.NestedType = []*descriptorpb.DescriptorProto{
		message("Latest", one("num_versions", 1, tUint32)), message("All"), message("Specific", many("versions", 1, tInt64)),
	}
	config := message("ModelConfig", one("name", 1, tString), one("platform", 2, tString), msg("version_policy", 3, p+"ModelVersionPolicy"),
		one("max_batch_size", 4, tInt32), msgs("input", 5, p+"ModelInput"), msgs("output", 6, p+"ModelOutput"),
		msgs("instance_group", 7, p+"ModelInstanceGroup"), msg("dynamic_batching", 11, p+"ModelDynamicBatching"),
		one("backend", 17, tString), msg("response_cache", 24, p+"ModelResponseCache"))
	oneof(config, "scheduling_choice", "dynamic_batching")

	duration := func(name string, num int32) *descriptorpb.FieldDescriptorProto {
		return msg(name, num, p+"StatisticDuration")
	}
	infer := message("InferStatistics", duration("success", 1), duration("fail", 2), duration("queue", 3), duration("compute_input", 4),
		duration("compute_infer", 5), duration("compute_output", 6), duration("cache_hit", 7), duration("cache_miss", 8))
	responses := message("InferResponseStatistics", duration("compute_infer", 1), duration("compute_output", 2), duration("success", 3),
		duration("fail", 4), duration("empty_response", 5), duration("cancel", 6))
	batch := message("InferBatchStatistics", one("batch_size", 1, tUint64), duration("compute_input", 2), duration("compute_infer", 3),
		duration("compute_output", 4))
	stats := message("ModelStatistics", one("name", 1, tString), one("version", 2, tString), one("last_inference", 3, tUint64),
		one("inference_count", 4, tUint64), one("execution_count", 5, tUint64), msg("inference_stats", 6, p+"InferStatistics"),
		msgs("batch_stats", 7, p+"InferBatchStatistics"), msgs("memory_usage", 8, p+"MemoryUsage"),
		msgs("response_stats", 9, p+"ModelStatistics.ResponseStatsEntry"))
	entry := message("ResponseStatsEntry", one("key", 1, tString), msg("value", 2, p+"InferResponseStatistics"))
	entry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
	stats.NestedType = []*descriptorpb.DescriptorProto{entry}

	index := message("RepositoryIndexResponse", msgs("models", 1, p+"RepositoryIndexResponse.ModelIndex"))
	index.NestedType = []*descriptorpb.DescriptorProto{
		message("ModelIndex", one("name", 1, tString), one("version", 2, tString), one("state", 3, tString), one("reason", 4, tString)),
	}

	// ModelRepositoryParameter's oneof, and the parameters map of the
	// load and unload requests.
	repoParam := message("ModelRepositoryParameter", one("bool_param", 1, tBool), one("int64_param", 2, tInt64),
		one("string_param", 3, tString), one("bytes_param", 4, tBytes))
	oneof(repoParam, "parameter_choice")
	repoRequest := func(name string) *descriptorpb.DescriptorProto {
		m := message(name, one("repository_name", 1, tString), one("model_name", 2, tString),
			msgs("parameters", 3, p+name+".ParametersEntry"))
		entry := message("ParametersEntry", one("key", 1, tString), msg("value", 2, p+"ModelRepositoryParameter"))
		entry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
		m.NestedType = []*descriptorpb.DescriptorProto{entry}
		return m
	}

	// The system shared memory extension's status: regions by name.
	shmStatus := message("SystemSharedMemoryStatusResponse", msgs("regions", 1, p+"SystemSharedMemoryStatusResponse.RegionsEntry"))
	regionsEntry := message("RegionsEntry", one("key", 1, tString), msg("value", 2, p+"SystemSharedMemoryStatusResponse.RegionStatus"))
	regionsEntry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
	shmStatus.NestedType = []*descriptorpb.DescriptorProto{
		message("RegionStatus", one("name", 1, tString), one("key", 2, tString), one("offset", 3, tUint64), one("byte_size", 4, tUint64)),
		regionsEntry,
	}

	// CUDA shared memory's: infergate registers none, and answers so.
	cudaStatus := message("CudaSharedMemoryStatusResponse", msgs("regions", 1, p+"CudaSharedMemoryStatusResponse.RegionsEntry"))
	cudaEntry := message("RegionsEntry", one("key", 1, tString), msg("value", 2, p+"CudaSharedMemoryStatusResponse.RegionStatus"))
	cudaEntry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
	cudaStatus.NestedType = []*descriptorpb.DescriptorProto{
		message("RegionStatus", one("name", 1, tString), one("device_id", 2, tUint64), one("byte_size", 3, tUint64)),
		cudaEntry,
	}

	// The trace extension's settings: lists of strings by name, in the
	// request and in the response alike.
	traceSettings := func(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
		m := message(name, append([]*descriptorpb.FieldDescriptorProto{msgs("settings", 1, p+name+".SettingsEntry")}, fields...)...)
		entry := message("SettingsEntry", one("key", 1, tString), msg("value", 2, p+name+".SettingValue"))
		entry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
		value := message("SettingValue", many("value", 1, tString))
		m.NestedType = []*descriptorpb.DescriptorProto{value, entry}
		return m
	}

	// Each of the logging extension's messages has its own SettingValue:
	// a oneof of bool_param (1), uint32_param (2) and string_param (3).
	logSettings := func(name string) *descriptorpb.DescriptorProto {
		m := message(name, msgs("settings", 1, p+name+".SettingsEntry"))
		entry := message("SettingsEntry", one("key", 1, tString), msg("value", 2, p+name+".SettingValue"))
		entry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
		value := message("SettingValue", one("bool_param", 1, tBool), one("uint32_param", 2, tUint32), one("string_param", 3, tString))
		oneof(value, "parameter_choice")
		m.NestedType = []*descriptorpb.DescriptorProto{value, entry}
		return m
	}

	fd.EnumType = append(fd.EnumType, enum("DataType", "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32",
		"TYPE_UINT64", "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"))
	fd.MessageType = append(fd.MessageType,
		message("ModelConfigRequest", one("name", 1, tString), one("version", 2, tString)),
		message("ModelConfigResponse", msg("config", 1, p+"ModelConfig")),
		config, input, output, group, batching, policy, message("ModelResponseCache", one("enable", 1, tBool)),
		message("ModelStatisticsRequest", one("name", 1, tString), one("version", 2, tString)),
		message("ModelStatisticsResponse", msgs("model_stats", 1, p+"ModelStatistics")),
		message("StatisticDuration", one("count", 1, tUint64), one("ns", 2, tUint64)),
		stats, infer, responses, batch,
		message("MemoryUsage", one("type", 1, tString), one("id", 2, tInt64), one("byte_size", 3, tUint64)),
		message("RepositoryIndexRequest", one("repository_name", 1, tString), one("ready", 2, tBool)),
		index,
		repoParam,
		repoRequest("RepositoryModelLoadRequest"), message("RepositoryModelLoadResponse"),
		repoRequest("RepositoryModelUnloadRequest"), message("RepositoryModelUnloadResponse"),
		message("SystemSharedMemoryStatusRequest", one("name", 1, tString)),
		shmStatus,
		message("SystemSharedMemoryRegisterRequest", one("name", 1, tString), one("key", 2, tString), one("offset", 3, tUint64),
			one("byte_size", 4, tUint64)),
		message("SystemSharedMemoryRegisterResponse"),
		message("SystemSharedMemoryUnregisterRequest", one("name", 1, tString)),
		message("SystemSharedMemoryUnregisterResponse"),
		message("CudaSharedMemoryStatusRequest", one("name", 1, tString)),
		cudaStatus,
		message("CudaSharedMemoryRegisterRequest", one("name", 1, tString), one("raw_handle", 2, tBytes), one("device_id", 3, tInt64),
			one("byte_size", 4, tUint64)),
		message("CudaSharedMemoryRegisterResponse"),
		message("CudaSharedMemoryUnregisterRequest", one("name", 1, tString)),
		message("CudaSharedMemoryUnregisterResponse"),
		traceSettings("TraceSettingRequest", one("model_name", 2, tString)),
		traceSettings("TraceSettingResponse"),
		logSettings("LogSettingsRequest"),
		logSettings("LogSettingsResponse"),
	)
}

// jsonName is the JSON name protoc gives a field: its name in lower camel
// case (model_name: modelName).
func jsonName(name string) string {
	b := make([]byte, 0, len(name))
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			upper = true
		case upper && 'a' <= c && c <= 'z':
			b = append(b, c-'a'+'A')
			upper = false
		default:
			b = append(b, c)
			upper = false
		}
	}
	return string(b)
}

// oneof declares the oneof name of m, holding the fields named (all of
// m's when none are).
func oneof(m *descriptorpb.DescriptorProto, name string, fields ...string) {
	index := proto.Int32(int32(len(m.OneofDecl)))
	m.OneofDecl = append(m.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String(name)})
	for _, f := range m.Field {
		if len(fields) == 0 || slices.Contains(fields, f.GetName()) {
			f.OneofIndex = index
		}
	}
}
