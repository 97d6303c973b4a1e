package logs

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/m365tap/m365tap/internal/winetest"
)

// TestStdoutClosedPipe: events to a pipe whose reader has gone are dropped
// with one notice on stderr; the file output goes on and Close reports no
// error (on Windows the write failed with "Pipe not connected." and the
// tap exited 1, issue 12).
func TestStdoutClosedPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r.Close()
	file := filepath.Join(winetest.TempDir(t), "events.log")
	var stderr bytes.Buffer
	lg, err := New(Options{Stdout: true, StdoutW: w, File: file, Stderr: &stderr, Meta: testMeta})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		lg.Events.Info("exchange", zap.String("host", "login.microsoftonline.com"))
		if err := lg.Events.Sync(); err != nil {
			t.Errorf("sync with stdout's reader gone: %v", err)
		}
	}
	if err := lg.Close(); err != nil {
		t.Errorf("Close with stdout's reader gone: %v", err)
	}
	if n := strings.Count(stderr.String(), "standard output was closed"); n != 1 {
		t.Errorf("stderr says it %d times, want once: %q", n, stderr.String())
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(got, []byte("login.microsoftonline.com")); n != 3 {
		t.Errorf("file holds %d events, want 3", n)
	}
}

// TestStdoutSyncKinds: syncing standard output connected to a pipe or the
// null device is no error; a regular file is synced. Each is a real handle
// of the running system (under wine for the Windows build).
func TestStdoutSyncKinds(t *testing.T) {
	null := "/dev/null"
	if runtime.GOOS == "windows" {
		null = "NUL"
	}
	nf, err := os.OpenFile(null, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	reg, err := os.Create(filepath.Join(winetest.TempDir(t), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, tc := range []struct {
		name     string
		f        *os.File
		syncable bool
	}{{"null device", nf, false}, {"pipe", w, false}, {"regular file", reg, true}} {
		s := newStdoutSink(tc.f, os.Stderr)
		if s.syncable != tc.syncable {
			t.Errorf("%s: syncable %v, want %v", tc.name, s.syncable, tc.syncable)
		}
		if _, err := s.Write([]byte("{}\n")); err != nil {
			t.Errorf("%s: write: %v", tc.name, err)
		}
		if err := s.Sync(); err != nil {
			t.Errorf("%s: sync: %v", tc.name, err)
		}
	}
}
