// Package trainer learns new model versions from a gateway's traffic: the
// predictions its traffic log sampled, joined with the outcomes clients
// reported for them (feedback labels). It trains a multi-layer perceptron
// or a logistic regression in pure Go (mini-batch Adam on the binary
// cross-entropy), evaluates it against the version that answered on a
// holdout the training never saw, and exports it as ONNX through
// trainer/onnx.
//
// This is the loop's first part: a person (or `infergate train`) decides
// what to publish. Drift detection, and the shadow and canary stages that
// promote or roll back a version on evidence, come next.
//
// The trainer is a client: it reads traffic over HTTP (GET /v1/traffic)
// and never imports the gateway.
package trainer
