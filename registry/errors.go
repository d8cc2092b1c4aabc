package registry

import "errors"

var (
	// ErrModelNotFound means no loaded model has the requested name.
	ErrModelNotFound = errors.New("model not found")
	// ErrVersionNotFound means the model is loaded but the requested
	// version is not among its ready versions.
	ErrVersionNotFound = errors.New("model version not found")
	// ErrModelNotReady means the model is known but has no ready version.
	ErrModelNotReady = errors.New("model has no ready version")
	// ErrNoVersions means a model's directory holds no version that its
	// version policy selects (none at all, or not the ones it names): a
	// model of the repository that cannot load, not an unknown name.
	ErrNoVersions = errors.New("no version to load")
	// ErrBadName means a model name that cannot name a directory safely.
	ErrBadName = errors.New("invalid model name")
	// ErrBadConfig means a model configuration that fails validation.
	ErrBadConfig = errors.New("invalid model configuration")
	// ErrLoadFailed means at least one version of a model failed to load.
	ErrLoadFailed = errors.New("model load failed")
	// ErrClosed means the repository was closed.
	ErrClosed = errors.New("repository closed")
	// ErrVersionBusy means AcquireIdle found a client's request in
	// flight on the version.
	ErrVersionBusy = errors.New("model version has requests in flight")
)
