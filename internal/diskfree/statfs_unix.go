//go:build unix

package diskfree

import "golang.org/x/sys/unix"

// statfs returns the bytes of dir's filesystem free to unprivileged users.
func statfs(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
