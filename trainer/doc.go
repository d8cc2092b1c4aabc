// Package trainer learns new model versions from a gateway's traffic and
// takes them to production on evidence.
//
// It reads the predictions the gateways' traffic logs sampled, joined with
// the outcomes clients reported for them (feedback labels and rewards) and
// with what a shadow version answered to the same requests (Joiner);
// trains a multi-layer perceptron or a logistic regression in pure Go
// (mini-batch Adam on the binary cross-entropy, Train); evaluates it
// against the version that answered on a holdout the training never saw
// (Compare); and exports it as ONNX through trainer/onnx.
//
// Loop is the sidecar that does this on its own for one model: it watches
// production's inputs and scores for drift (the population stability index
// against a reference window, Reference), retrains when they drift, and
// takes a candidate that beats production on the holdout through a shadow
// stage (the paired difference of the log losses on the same labeled
// requests) and a canary stage (an experiment arm against the control arm,
// over units, with rewards and failures as guardrails), deciding on
// always-valid intervals (AlwaysValid) that it may look at every step,
// and promoting or rolling back (Policy). Its state survives restarts.
//
// The trainer is a client: it reads traffic and drives the cluster over
// HTTP (GET /v1/traffic and the admin API, Gateway) and never imports the
// gateway.
package trainer
