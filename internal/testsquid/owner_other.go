//go:build !unix

package testsquid

import "os"

// privateDir reports whether fi is a directory; without Unix owners there
// is nothing more to check (and no Debian Squid to run).
func privateDir(fi os.FileInfo) bool { return fi.IsDir() }
