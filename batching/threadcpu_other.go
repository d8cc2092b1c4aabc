//go:build !linux

package batching

import "time"

// threadCPU reports that this platform's thread CPU time is not read.
func threadCPU() time.Duration { return -1 }
