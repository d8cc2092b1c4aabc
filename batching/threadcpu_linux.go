package batching

import (
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID.
const clockThreadCPUTime = 3

// threadCPU returns the CPU time the calling thread has used, or -1 when
// the clock cannot be read. The caller locks its goroutine to the thread
// between two readings it compares.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	// clock_gettime never blocks: no need to tell the scheduler.
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return -1
	}
	return time.Duration(ts.Nano())
}
