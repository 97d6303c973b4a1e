//go:build !unix && !windows

package logs

import "os"

// lockFile: this system has no advisory lock the tap can use; the disk
// queue relies on one tap per directory.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
