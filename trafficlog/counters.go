package trafficlog

import "github.com/VictoriaMetrics/metrics"

// Counters are the series every Sink counts its events under, so that a
// dashboard reads the same whatever keeps the log.
type Counters struct {
	// events counts the events written, by kind-1
	// (infergate_traffic_events_total).
	events [numKinds]*metrics.Counter
	// DropFull, DropLarge, DropWrite, DropClosed and DropDiskLow count
	// the events dropped (infergate_traffic_dropped_total) because the
	// sink's queue was full, they were too large (or not readable back),
	// the write failed, the sink was closed, or the disk kept too little
	// free; WriteErrors the failed writes.
	DropFull, DropLarge, DropWrite, DropClosed, DropDiskLow, WriteErrors *metrics.Counter
}

// NewCounters makes (or finds) the series in set.
func NewCounters(set *metrics.Set) *Counters {
	c := &Counters{
		DropFull:    set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="queue_full"}`),
		DropLarge:   set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="too_large"}`),
		DropWrite:   set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="write_error"}`),
		DropClosed:  set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="closed"}`),
		DropDiskLow: set.GetOrCreateCounter(`infergate_traffic_dropped_total{reason="disk_low"}`),
		WriteErrors: set.GetOrCreateCounter(`infergate_traffic_write_errors_total`),
	}
	for i := range c.events {
		c.events[i] = set.GetOrCreateCounter(`infergate_traffic_events_total{kind="` + Kind(i+1).String() + `"}`)
	}
	return c
}

// Written counts n events of kind k written; k must be known.
func (c *Counters) Written(k Kind, n int) { c.events[k-1].Add(n) }
