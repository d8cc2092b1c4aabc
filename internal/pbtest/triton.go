package pbtest

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// addTriton adds to fd the messages of Triton's extension methods that
// infergate answers (ModelConfig, ModelStatistics, RepositoryIndex,
// RepositoryModelLoad, RepositoryModelUnload), with
// the field numbers of Triton's grpc_service.proto and model_config.proto
// (triton-inference-server/common, protobuf/): the fields infergate
// sends, and those the protobuf library needs to read an answer as a
// Triton client does. ModelConfig's scheduling_choice and
// ModelVersionPolicy's policy_choice oneofs are plain fields here: the
// wire format is the same.
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
	policy.NestedType = []*descriptorpb.DescriptorProto{
		message("Latest", one("num_versions", 1, tUint32)), message("All"), message("Specific", many("versions", 1, tInt64)),
	}
	config := message("ModelConfig", one("name", 1, tString), one("platform", 2, tString), msg("version_policy", 3, p+"ModelVersionPolicy"),
		one("max_batch_size", 4, tInt32), msgs("input", 5, p+"ModelInput"), msgs("output", 6, p+"ModelOutput"),
		msgs("instance_group", 7, p+"ModelInstanceGroup"), msg("dynamic_batching", 11, p+"ModelDynamicBatching"),
		one("backend", 17, tString), msg("response_cache", 24, p+"ModelResponseCache"))

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
	repoParam.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("parameter_choice")}}
	for _, f := range repoParam.Field {
		f.OneofIndex = proto.Int32(0)
	}
	repoRequest := func(name string) *descriptorpb.DescriptorProto {
		m := message(name, one("repository_name", 1, tString), one("model_name", 2, tString),
			msgs("parameters", 3, p+name+".ParametersEntry"))
		entry := message("ParametersEntry", one("key", 1, tString), msg("value", 2, p+"ModelRepositoryParameter"))
		entry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
		m.NestedType = []*descriptorpb.DescriptorProto{entry}
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
	)
}

// RepositoryRequest returns a RepositoryModelLoadRequest or
// RepositoryModelUnloadRequest (typ) for model, with params: each value a
// bool, int64, string or []byte, set as the ModelRepositoryParameter
// field of its type.
func RepositoryRequest(typ, model string, params map[string]any) *dynamicpb.Message {
	m := New(typ)
	fs := m.Descriptor().Fields()
	m.Set(fs.ByName("model_name"), protoreflect.ValueOfString(model))
	ps := m.Mutable(fs.ByName("parameters")).Map()
	for k, v := range params {
		pv := dynamicpb.NewMessage(fs.ByName("parameters").MapValue().Message())
		pfs := pv.Descriptor().Fields()
		switch x := v.(type) {
		case bool:
			pv.Set(pfs.ByName("bool_param"), protoreflect.ValueOfBool(x))
		case int64:
			pv.Set(pfs.ByName("int64_param"), protoreflect.ValueOfInt64(x))
		case string:
			pv.Set(pfs.ByName("string_param"), protoreflect.ValueOfString(x))
		case []byte:
			pv.Set(pfs.ByName("bytes_param"), protoreflect.ValueOfBytes(x))
		default:
			panic(fmt.Sprintf("pbtest: a ModelRepositoryParameter has no field for a %T", v))
		}
		ps.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfMessage(pv))
	}
	return m
}

// Unknown returns the fields of m, and of the messages in it, that its
// descriptor does not name, as "path: field N": a field an encoder sent
// under a number the protocol does not give it.
func Unknown(m protoreflect.Message) []string {
	var out []string
	var walk func(path string, m protoreflect.Message)
	walk = func(path string, m protoreflect.Message) {
		b := m.GetUnknown()
		for len(b) > 0 {
			num, typ, n := protowireConsumeField(b)
			if n < 0 {
				out = append(out, fmt.Sprintf("%s: unparsable unknown bytes", path))
				break
			}
			out = append(out, fmt.Sprintf("%s: field %d (wire type %d)", path, num, typ))
			b = b[n:]
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := path + "." + string(fd.Name())
			switch {
			case fd.IsMap():
				if fd.MapValue().Message() != nil {
					v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
						walk(fmt.Sprintf("%s[%v]", name, k), e.Message())
						return true
					})
				}
			case fd.IsList():
				if fd.Message() != nil {
					for i := range v.List().Len() {
						walk(fmt.Sprintf("%s[%d]", name, i), v.List().Get(i).Message())
					}
				}
			case fd.Message() != nil:
				walk(name, v.Message())
			}
			return true
		})
	}
	walk(string(m.Descriptor().Name()), m)
	return out
}

// protowireConsumeField parses the field at the start of b: its number,
// wire type and length in all (negative when malformed).
func protowireConsumeField(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, n
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return 0, 0, m
	}
	return num, typ, n + m
}
