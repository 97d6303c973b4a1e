package testnet

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestGzipFileRoundTrips(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a.log"), filepath.Join(dir, "a.log.gz")
	if err := os.WriteFile(src, []byte("line 1\nline 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	GzipFile(t, src, dst)
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || string(got) != "line 1\nline 2\n" {
		t.Fatalf("read back %q, %v", got, err)
	}
}
