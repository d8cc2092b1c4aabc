package oip

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Five of Triton's extension methods of inference.GRPCInferenceService,
// which Triton's clients call (get_model_config,
// get_inference_statistics, get_model_repository_index, load_model,
// unload_model): ModelConfig, ModelStatistics, RepositoryIndex,
// RepositoryModelLoad and RepositoryModelUnload, coded by hand as the
// protocol's own messages are (grpc.go).
//
// Field numbers, from Triton's protobuf/grpc_service.proto and
// protobuf/model_config.proto (triton-inference-server/common), for the
// fields coded here:
//
//	message                       field                         number
//	ModelConfigRequest            name, version                 1, 2
//	ModelConfigResponse           config                        1
//	ModelConfig                   name                          1
//	                              platform                      2
//	                              version_policy                3
//	                              max_batch_size (int32)        4
//	                              input                         5
//	                              output                        6
//	                              instance_group                7
//	                              dynamic_batching              11
//	                              backend                       17
//	                              response_cache                24
//	ModelVersionPolicy            latest, all, specific         1, 2, 3
//	ModelVersionPolicy.Latest     num_versions (uint32)         1
//	ModelVersionPolicy.Specific   versions (int64)              1
//	ModelInput                    name, data_type, dims         1, 2, 4
//	ModelOutput                   name, data_type, dims         1, 2, 3
//	ModelInstanceGroup            name, count, gpus, kind       1, 2, 3, 4
//	ModelDynamicBatching          preferred_batch_size (int32)  1
//	                              max_queue_delay_microseconds  2
//	                              priority_levels               4
//	                              default_priority_level        5
//	ModelResponseCache            enable                        1
//	ModelStatisticsRequest        name, version                 1, 2
//	ModelStatisticsResponse       model_stats                   1
//	ModelStatistics               name, version                 1, 2
//	                              last_inference                3
//	                              inference_count               4
//	                              execution_count               5
//	                              inference_stats               6
//	                              batch_stats                   7
//	InferStatistics               success, fail, queue          1, 2, 3
//	                              compute_input, _infer, _output 4, 5, 6
//	                              cache_hit, cache_miss         7, 8
//	InferBatchStatistics          batch_size                    1
//	                              compute_input, _infer, _output 2, 3, 4
//	StatisticDuration             count, ns                     1, 2
//	RepositoryIndexRequest        repository_name, ready        1, 2
//	RepositoryIndexResponse       models                        1
//	  .ModelIndex                 name, version, state, reason  1, 2, 3, 4
//	RepositoryModelLoadRequest    repository_name, model_name   1, 2
//	                              parameters (map)              3
//	RepositoryModelUnloadRequest  repository_name, model_name   1, 2
//	                              parameters (map)              3
//	RepositoryModelLoadResponse,  (no fields)
//	RepositoryModelUnloadResponse
//	a map's entry                 key, value                    1, 2
//	ModelRepositoryParameter      bool_param, int64_param       1, 2
//	  (oneof parameter_choice)    string_param, bytes_param     3, 4
//
// Enums: DataType TYPE_BOOL 1, TYPE_UINT8 2, TYPE_UINT16 3, TYPE_UINT32
// 4, TYPE_UINT64 5, TYPE_INT8 6, TYPE_INT16 7, TYPE_INT32 8, TYPE_INT64
// 9, TYPE_FP16 10, TYPE_FP32 11, TYPE_FP64 12, TYPE_STRING 13 (the
// protocol's BYTES); ModelInstanceGroup.Kind KIND_AUTO 0, KIND_GPU 1,
// KIND_CPU 2.
//
// ModelStatistics' memory_usage (8) and response_stats (9) are left
// empty, as the HTTP answer leaves them.

// tritonDataTypes maps a DataType to the number of Triton's DataType
// enum value; 0 (TYPE_INVALID) for none.
var tritonDataTypes = [numTypes]protowire.Number{
	BOOL: 1, UINT8: 2, UINT16: 3, UINT32: 4, UINT64: 5, INT8: 6, INT16: 7, INT32: 8,
	INT64: 9, FP16: 10, FP32: 11, FP64: 12, BYTES: 13,
}

// tritonKinds maps the names of ModelInstanceGroup.Kind's values that a
// configuration has to their numbers.
var tritonKinds = map[string]uint64{"KIND_AUTO": 0, "KIND_GPU": 1, "KIND_CPU": 2}

// TritonModelConfig is a model version's configuration as Triton's
// ModelConfig message describes it: the facts GET
// /v2/models/{m}[/versions/{v}]/config reports in Triton's spelling.
type TritonModelConfig struct {
	Name, Platform, Backend string
	VersionPolicy           TritonVersionPolicy
	// MaxBatchSize is 0 for a version without a batch dimension.
	MaxBatchSize int64
	// Inputs and Outputs' Dims leave the batch dimension out when
	// MaxBatchSize is above 0, as Triton's do.
	Inputs, Outputs []TritonTensor
	InstanceGroups  []TritonInstanceGroup
	// DynamicBatching is nil when the version has no dynamic batching.
	DynamicBatching *TritonDynamicBatching
	// ResponseCache is nil when the configuration says nothing of it.
	ResponseCache *bool
}

// TritonVersionPolicy is which versions of a model serve: the Latest
// ones (a count), All, or the Specific ones listed. Exactly one is set.
type TritonVersionPolicy struct {
	Latest   int
	All      bool
	Specific []int64
}

// TritonTensor is an entry of a configuration's input or output list.
type TritonTensor struct {
	Name     string
	Datatype DataType
	Dims     []int64
}

// TritonInstanceGroup is Count instances of kind Kind (KIND_CPU,
// KIND_GPU or KIND_AUTO) on GPUs (none for the CPU).
type TritonInstanceGroup struct {
	Count int
	Kind  string
	GPUs  []int
}

// TritonDynamicBatching is a configuration's dynamic_batching block.
type TritonDynamicBatching struct {
	PreferredBatchSize                   []int
	MaxQueueDelayMicroseconds            int64
	PriorityLevels, DefaultPriorityLevel int
}

// ModelIndex is an entry of the repository's index: a model, or one of
// its versions, with its state and why it is in it.
type ModelIndex struct {
	Name, Version, State, Reason string
}

// appendMessage appends field num holding the message that f appends to
// dst. The message is written first and its length put in front of it:
// these messages are small and built once per call.
func appendMessage(dst []byte, num protowire.Number, f func([]byte) []byte) []byte {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	start := len(dst)
	dst = f(dst)
	n := len(dst) - start
	k := protowire.SizeVarint(uint64(n))
	for range k {
		dst = append(dst, 0)
	}
	copy(dst[start+k:], dst[start:start+n])
	protowire.AppendVarint(dst[:start], uint64(n))
	return dst
}

// appendPBVarint appends varint field num unless x is 0 (proto3's
// default, never sent).
func appendPBVarint(dst []byte, num protowire.Number, x uint64) []byte {
	if x == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, x)
}

// appendPacked appends xs as packed varint field num, unless empty.
func appendPacked[T int | int64](dst []byte, num protowire.Number, xs []T) []byte {
	if len(xs) == 0 {
		return dst
	}
	return appendMessage(dst, num, func(dst []byte) []byte {
		for _, x := range xs {
			dst = protowire.AppendVarint(dst, uint64(x))
		}
		return dst
	})
}

// AppendModelConfigResponse appends c as a ModelConfigResponse. It panics
// for an instance group kind or data type Triton's enums lack, which no
// loaded version has.
func AppendModelConfigResponse(dst []byte, c *TritonModelConfig) []byte {
	return appendMessage(dst, 1, func(dst []byte) []byte {
		dst = appendPBString(dst, 1, c.Name)
		dst = appendPBString(dst, 2, c.Platform)
		dst = appendMessage(dst, 3, func(dst []byte) []byte {
			p := &c.VersionPolicy
			switch {
			case p.All:
				return appendMessage(dst, 2, func(dst []byte) []byte { return dst })
			case p.Specific != nil:
				return appendMessage(dst, 3, func(dst []byte) []byte { return appendPacked(dst, 1, p.Specific) })
			}
			return appendMessage(dst, 1, func(dst []byte) []byte { return appendPBVarint(dst, 1, uint64(p.Latest)) })
		})
		// int32: a negative value would take ten bytes, as int64's do;
		// none is.
		dst = appendPBVarint(dst, 4, uint64(c.MaxBatchSize))
		for _, list := range [...]struct {
			num, dims protowire.Number
			ts        []TritonTensor
		}{{5, 4, c.Inputs}, {6, 3, c.Outputs}} {
			for _, t := range list.ts {
				dt := tritonDataTypes[t.Datatype]
				if dt == 0 {
					panic("BUG: a configuration's tensor " + t.Name + " has a type Triton's DataType lacks: " + t.Datatype.String())
				}
				dst = appendMessage(dst, list.num, func(dst []byte) []byte {
					dst = appendPBString(dst, 1, t.Name)
					dst = appendPBVarint(dst, 2, uint64(dt))
					return appendPacked(dst, list.dims, t.Dims)
				})
			}
		}
		for _, g := range c.InstanceGroups {
			kind, ok := tritonKinds[g.Kind]
			if !ok {
				panic("BUG: an instance group of kind " + g.Kind + ", which Triton's ModelInstanceGroup.Kind lacks")
			}
			dst = appendMessage(dst, 7, func(dst []byte) []byte {
				dst = appendPBVarint(dst, 2, uint64(g.Count))
				dst = appendPacked(dst, 3, g.GPUs)
				return appendPBVarint(dst, 4, kind)
			})
		}
		if d := c.DynamicBatching; d != nil {
			dst = appendMessage(dst, 11, func(dst []byte) []byte {
				dst = appendPacked(dst, 1, d.PreferredBatchSize)
				dst = appendPBVarint(dst, 2, uint64(d.MaxQueueDelayMicroseconds))
				dst = appendPBVarint(dst, 4, uint64(d.PriorityLevels))
				return appendPBVarint(dst, 5, uint64(d.DefaultPriorityLevel))
			})
		}
		dst = appendPBString(dst, 17, c.Backend)
		if rc := c.ResponseCache; rc != nil {
			dst = appendMessage(dst, 24, func(dst []byte) []byte {
				if *rc {
					return appendPBVarint(dst, 1, 1)
				}
				return dst
			})
		}
		return dst
	})
}

// appendDuration appends StatisticDuration field num; one that counts
// nothing is sent too, as Triton sends it.
func appendDuration(dst []byte, num protowire.Number, d DurationStat) []byte {
	return appendMessage(dst, num, func(dst []byte) []byte {
		dst = appendPBVarint(dst, 1, d.Count)
		return appendPBVarint(dst, 2, d.NS)
	})
}

// AppendModelStatisticsResponse appends stats as a
// ModelStatisticsResponse, in their order.
func AppendModelStatisticsResponse(dst []byte, stats []ModelStat) []byte {
	for i := range stats {
		s := &stats[i]
		dst = appendMessage(dst, 1, func(dst []byte) []byte {
			dst = appendPBString(dst, 1, s.Name)
			dst = appendPBString(dst, 2, s.Version)
			dst = appendPBVarint(dst, 3, uint64(max(s.LastInference, 0)))
			dst = appendPBVarint(dst, 4, s.InferenceCount)
			dst = appendPBVarint(dst, 5, s.ExecutionCount)
			is := &s.InferenceStats
			dst = appendMessage(dst, 6, func(dst []byte) []byte {
				for j, d := range [...]DurationStat{is.Success, is.Fail, is.Queue, is.ComputeInput, is.ComputeInfer, is.ComputeOutput, is.CacheHit, is.CacheMiss} {
					dst = appendDuration(dst, protowire.Number(j+1), d)
				}
				return dst
			})
			for _, b := range s.BatchStats {
				dst = appendMessage(dst, 7, func(dst []byte) []byte {
					dst = appendPBVarint(dst, 1, uint64(b.BatchSize))
					dst = appendDuration(dst, 2, b.ComputeInput)
					dst = appendDuration(dst, 3, b.ComputeInfer)
					return appendDuration(dst, 4, b.ComputeOutput)
				})
			}
			return dst
		})
	}
	return dst
}

// AppendRepositoryIndexResponse appends idx as a RepositoryIndexResponse.
func AppendRepositoryIndexResponse(dst []byte, idx []ModelIndex) []byte {
	for _, e := range idx {
		dst = appendMessage(dst, 1, func(dst []byte) []byte {
			dst = appendPBString(dst, 1, e.Name)
			dst = appendPBString(dst, 2, e.Version)
			dst = appendPBString(dst, 3, e.State)
			return appendPBString(dst, 4, e.Reason)
		})
	}
	return dst
}

// DecodeModelStatisticsRequest decodes a ModelStatisticsRequest, returning
// views of b: the model (empty: every model) and the version (empty: every
// version of the model; it needs a model).
func DecodeModelStatisticsRequest(b []byte) (name, version []byte, err error) {
	err = eachField(b, "ModelStatisticsRequest", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 && num != 2 {
			return nil
		}
		if typ != protowire.BytesType {
			return errorf("ModelStatisticsRequest field %d has wire type %d; the protocol's is length-delimited", num, typ)
		}
		if num == 1 {
			name = v
		} else {
			version = v
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(name) == 0 {
		if len(version) > 0 {
			return nil, nil, errorf("the request asks for the statistics of version %.32q of no model: set name too, or leave version empty for every model's", version)
		}
		return nil, nil, nil
	}
	return checkModelFields(name, version, "name", "version")
}

// DecodeRepositoryIndexRequest decodes a RepositoryIndexRequest: whether
// it asks for the versions ready to serve only. Its repository_name is
// not read: a server has one repository.
func DecodeRepositoryIndexRequest(b []byte) (ready bool, err error) {
	err = eachField(b, "RepositoryIndexRequest", func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if num != 2 {
			return nil
		}
		if typ != protowire.VarintType {
			return errorf("RepositoryIndexRequest field ready has wire type %d; the protocol's is varint", typ)
		}
		ready = x != 0
		return nil
	})
	return ready, err
}

// Fields of RepositoryModelLoadRequest and RepositoryModelUnloadRequest,
// and ModelRepositoryParameter's oneof.
const (
	fRepoModelName   = 2
	fRepoParams      = 3
	fRepoParamBool   = 1
	fRepoParamInt64  = 2
	fRepoParamString = 3
	fRepoParamBytes  = 4
)

// repoParam is a decoded ModelRepositoryParameter: which of its oneof was
// set (0: none), and its value.
type repoParam struct {
	kind protowire.Number
	x    uint64 // bool, int64
	s    []byte // string, bytes
}

// String describes p for an error message, without its text or bytes,
// which may be long.
func (p repoParam) String() string {
	switch p.kind {
	case fRepoParamBool:
		if p.x != 0 {
			return "bool_param true"
		}
		return "bool_param false"
	case fRepoParamInt64:
		return "int64_param " + strconv.FormatInt(int64(p.x), 10)
	case fRepoParamString:
		return "a string_param"
	case fRepoParamBytes:
		return "a bytes_param"
	}
	return "not set"
}

// decodeRepositoryRequest decodes a RepositoryModelLoadRequest or
// RepositoryModelUnloadRequest (msg names it): the model, a view of b,
// with param called for each entry of its parameters. repository_name
// is not read: a server has one repository.
func decodeRepositoryRequest(b []byte, msg string, param func(key []byte, p repoParam) error) (name []byte, err error) {
	err = eachField(b, msg, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fRepoModelName && num != fRepoParams {
			return nil
		}
		if typ != protowire.BytesType {
			return errorf("%s field %d has wire type %d; the protocol's is length-delimited", msg, num, typ)
		}
		if num == fRepoModelName {
			name = v
			return nil
		}
		key, p, err := decodeRepoParamEntry(v)
		if err != nil {
			return err
		}
		return param(key, p)
	})
	if err != nil {
		return nil, err
	}
	name, _, err = checkModelFields(name, nil, "model_name", "")
	return name, err
}

// decodeRepoParamEntry decodes one map<string, ModelRepositoryParameter>
// entry.
func decodeRepoParamEntry(b []byte) (key []byte, p repoParam, err error) {
	key, pv, err := mapEntry(b)
	if err != nil {
		return nil, p, err
	}
	err = eachField(pv, "ModelRepositoryParameter", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case (num == fRepoParamBool || num == fRepoParamInt64) && typ == protowire.VarintType:
			p = repoParam{kind: num, x: x}
		case (num == fRepoParamString || num == fRepoParamBytes) && typ == protowire.BytesType:
			p = repoParam{kind: num, s: v}
		}
		return nil
	})
	return key, p, err
}

// DecodeRepositoryModelLoadRequest decodes a RepositoryModelLoadRequest:
// the model, and the configuration text of its "config" parameter (nil
// when it has none, or an empty one), both views of b: what POST
// /v2/repository/models/{m}/load takes in parameters.config. Another
// parameter is refused, as that endpoint refuses a field it does not
// know, so that a misspelt one is not taken for a done request; so are
// Triton's "file:" parameters, which carry model files.
func DecodeRepositoryModelLoadRequest(b []byte) (name, config []byte, err error) {
	name, err = decodeRepositoryRequest(b, "RepositoryModelLoadRequest", func(key []byte, p repoParam) error {
		switch {
		case string(key) == "config":
			if p.kind != fRepoParamString {
				return errorf("parameter \"config\" is %s; give config.json's text as string_param, as Triton's clients send it", p)
			}
			config = p.s
		case strings.HasPrefix(string(key), "file:"):
			return errorf("parameter %.64q: model files are not taken in the call; put them in the --models directory (<model>/<version>/model.onnx) and load the model by name", key)
		default:
			return errorf("parameter %.64q is not one RepositoryModelLoad takes; it takes \"config\" (config.json's text)", key)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(config) == 0 {
		config = nil
	}
	return name, config, nil
}

// DecodeRepositoryModelUnloadRequest decodes a RepositoryModelUnloadRequest:
// the model, a view of b. Its only parameter is Triton's
// "unload_dependents", a bool_param, which changes nothing (a model here
// has no dependents); another is refused, as POST
// /v2/repository/models/{m}/unload refuses it.
func DecodeRepositoryModelUnloadRequest(b []byte) (name []byte, err error) {
	return decodeRepositoryRequest(b, "RepositoryModelUnloadRequest", func(key []byte, p repoParam) error {
		if string(key) != "unload_dependents" {
			return errorf("parameter %.64q is not one RepositoryModelUnload takes; it takes \"unload_dependents\"", key)
		}
		if p.kind != fRepoParamBool {
			return errorf("parameter \"unload_dependents\" is %s; it must be bool_param", p)
		}
		return nil
	})
}
