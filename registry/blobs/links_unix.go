//go:build unix

package blobs

import (
	"os"
	"syscall"
)

// links returns how many names fi's file has (1 for a blob no Link made
// a hard link to); 1 when it cannot tell.
func links(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
