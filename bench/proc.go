package bench

import (
	"strconv"
	"strings"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: 100 ticks a
// second on every Linux this runs on (USER_HZ is fixed by the kernel's
// ABI, whatever the kernel's own tick rate).
const userHZ = 100

// parseProcStatCPU returns utime + stime, in seconds, from the text of a
// /proc/PID/stat file. The command name, field 2, is in parentheses and
// may hold spaces and parentheses itself, so the fields are counted from
// the last ')'.
func parseProcStatCPU(stat string) (float64, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	// After ") " come field 3 (state) onwards: utime and stime are
	// fields 14 and 15.
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(utime+stime) / userHZ, true
}
