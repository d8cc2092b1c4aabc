package onnx

import "errors"

// ErrInvalid is wrapped by every error that Model.Validate and MLP.Validate
// return: the model's parts disagree (sizes, names, types, weight lengths)
// and ONNX Runtime would refuse it or compute something else.
var ErrInvalid = errors.New("invalid model")
