// Package blobs is a content-addressed store for model files on one node.
//
// A blob is named by the sha256 of its bytes: a digest "sha256:<hex>" (the
// form peers use in URLs, /v1/blobs/sha256:<hex>) or the bare 64 lowercase
// hex digits that the Store's methods take. The store keeps
//
//	DIR/sha256/<hex>   committed blobs, read-only
//	DIR/tmp/           writes in progress; emptied by Open
//
// The cluster replicates only {digest, size}; each node keeps the bytes here
// and hands the body it fetches from a peer to PutExpect. A blob becomes
// visible under its hex only after its size and digest are checked, so a
// corrupt or truncated download never does. Writes are durable: a temp file
// is fsynced, renamed into place, and its directory fsynced. Link then puts
// a blob into the model repository that the registry package reads, as
// durably: the directories it creates are fsynced into their parents too
// (durable.MakeDirs).
//
// A Store is safe for concurrent use, including concurrent writes of the
// same blob: each write has its own temp file and the last rename wins with
// identical bytes. Only one Store may use a directory at a time, because
// Open removes the temp files of writes in progress.
package blobs
