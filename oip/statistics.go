package oip

import (
	"encoding/json"
	"fmt"
)

// ModelStatistics is the answer of GET
// /v2/models[/{model}[/versions/{version}]]/stats, the statistics
// extension of Triton's protocol: one entry per model version the server
// serves now.
type ModelStatistics struct {
	ModelStats []ModelStat `json:"model_stats"`
}

// ModelStat is the cumulative activity of one model version.
type ModelStat struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// LastInference is when the last request arrived, in milliseconds
	// since the Unix epoch; 0 before the first.
	LastInference int64 `json:"last_inference"`
	// InferenceCount counts the rows executed and ExecutionCount the
	// executions; a dynamic batch of 16 one-row requests adds 16 and 1.
	// Neither counts cache hits.
	InferenceCount uint64         `json:"inference_count"`
	ExecutionCount uint64         `json:"execution_count"`
	InferenceStats InferenceStats `json:"inference_stats"`
	// ResponseStats are Triton's statistics per response of a decoupled
	// model, keyed by the response's index. A server that sends one
	// response per request, which InferenceStats counts, leaves it empty,
	// but writes it: Triton's clients read the field.
	ResponseStats map[string]json.RawMessage `json:"response_stats"`
	// BatchStats are the executions by size, smallest first.
	BatchStats []BatchStats `json:"batch_stats"`
	// MemoryUsage is Triton's memory held by the model, by kind and
	// device; written empty, as ResponseStats.
	MemoryUsage []json.RawMessage `json:"memory_usage"`
}

// InferenceStats counts requests and their cumulative durations by stage.
type InferenceStats struct {
	// Success: requests answered, cache hits included, with their whole
	// time in the server; Fail: the failed ones.
	Success DurationStat `json:"success"`
	Fail    DurationStat `json:"fail"`
	// Queue: the wait of each request for an instance; cache hits count
	// here too.
	Queue DurationStat `json:"queue"`
	// ComputeInput, ComputeInfer and ComputeOutput: preparing the inputs,
	// running the model, taking the outputs, per request. A server that
	// cannot tell them apart (infergate times the three as one) counts
	// them all in ComputeInfer.
	ComputeInput  DurationStat `json:"compute_input"`
	ComputeInfer  DurationStat `json:"compute_infer"`
	ComputeOutput DurationStat `json:"compute_output"`
	// CacheHit: the requests the response cache answered, and the time
	// spent looking their entries up and copying them into the responses.
	CacheHit DurationStat `json:"cache_hit"`
	// CacheMiss: the requests the response cache could not answer, and
	// the time spent looking them up and storing their outputs.
	CacheMiss DurationStat `json:"cache_miss"`
}

// BatchStats are the executions of one batch size.
type BatchStats struct {
	BatchSize     int          `json:"batch_size"`
	ComputeInput  DurationStat `json:"compute_input"`
	ComputeInfer  DurationStat `json:"compute_infer"`
	ComputeOutput DurationStat `json:"compute_output"`
}

// DurationStat is a count and a cumulative duration in nanoseconds.
type DurationStat struct {
	Count uint64 `json:"count"`
	NS    uint64 `json:"ns"`
}

// ModelStatistics calls GET /v2/models[/{model}[/versions/{version}]]/stats;
// an empty model asks for every model, an empty version for every version
// of model.
func (c *Client) ModelStatistics(model, version string) (*ModelStatistics, error) {
	if c.err != nil {
		return nil, c.err
	}
	if model == "" && version != "" {
		return nil, fmt.Errorf("statistics of version %q of which model? give the model too", version)
	}
	var path []byte
	if model == "" {
		path = append([]byte(c.prefix), "/v2/models/stats"...)
	} else {
		path = c.appendModelPath(nil, model, version, "/stats")
	}
	st := &ModelStatistics{}
	if err := c.get(path, func(body []byte) error { return json.Unmarshal(body, st) }); err != nil {
		return nil, err
	}
	return st, nil
}
