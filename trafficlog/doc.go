// Package trafficlog is a node's log of what its models saw: a sample of
// the predictions it answered (inputs, outputs, version, experiment arm)
// and every outcome its clients reported for them (label, reward). The
// trainer reads it to join predictions with their outcomes, watch the
// inputs drift and retrain.
//
// The log is a directory of segment files, each named by the position
// (byte offset in the whole log) of its first record. Records are framed
// by their length and a CRC-32C, so a record torn by a crash is found and
// cut off when the log opens again. One goroutine owns the files: Append
// encodes an event on the caller's goroutine and hands it over without
// blocking (dropped and counted when the writer lags); AppendSync waits
// until the record is on disk (fsynced), for events that must not be
// lost silently. Readers see records once they are fsynced, so a
// position a reader was given never comes back holding other bytes after
// a crash. Old segments are deleted once the log outgrows its byte budget.
//
// trafficlog imports no server code: the gateway writes it, and its
// readers (the gateway's read endpoint, the trainer through it) decode
// records with Decode.
package trafficlog
