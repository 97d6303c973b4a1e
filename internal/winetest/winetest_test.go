package winetest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestTempDir: the directory exists and takes a file, on every system; off
// Windows it is never taken for wine.
func TestTempDir(t *testing.T) {
	if runtime.GOOS != "windows" && IsWine() {
		t.Fatal("IsWine on", runtime.GOOS)
	}
	dir := TempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("wine: %v", IsWine())
}
