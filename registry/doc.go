// Package registry keeps the model versions that one node serves.
//
// It reads a model repository in Triton's layout,
//
//	DIR/<model>/config.json          optional, see ModelConfig
//	DIR/<model>/<version>/model.onnx version: a positive integer
//
// picks versions by each model's version policy, loads them through a
// LoadFunc (the engine, in production), and makes a version routable only
// once it is loaded and warmed. Swaps are atomic: a new version is loaded
// beside the old one, the routing table is replaced in one pointer store,
// and the old version is closed only after its in-flight requests finish.
// A failed load leaves whatever served before serving and records why.
//
// The data plane calls Acquire and Version.Release; it never takes a lock
// that a load holds. The control plane (Load, Unload, Poll) is serialized.
package registry
