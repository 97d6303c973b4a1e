//go:build unix

package testsquid

import (
	"os"
	"syscall"
)

// privateDir reports whether fi is a directory this process's user owns
// and nobody else may write.
func privateDir(fi os.FileInfo) bool {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid() && fi.IsDir() && fi.Mode().Perm()&0o022 == 0
}
