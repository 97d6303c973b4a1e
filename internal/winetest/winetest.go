// Package winetest holds what tests need to run m365tap's Windows build
// under wine (Debian's wine 8.0 in CI), and nothing that pretends wine is
// Windows: callers use it only where wine is known to differ.
package winetest

import (
	"os"
	"testing"
)

// TempDir is t.TempDir, except under wine: wine 8.0 answers Go's file
// deletion (NtSetInformationFile with FileDispositionInformationEx) with
// STATUS_NOT_IMPLEMENTED, which Go reports as "Invalid function." rather
// than falling back, so t.TempDir's cleanup would fail every test that
// wrote a file. Under wine the directory is left in the prefix's temp
// folder, which CI throws away.
func TempDir(t testing.TB) string {
	t.Helper()
	if !IsWine() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "m365tap-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
