package testnet

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lines keeps what a logger or a program writes, for the test to read
// back while the writer's goroutines go on: an io.Writer, and with Sync a
// zapcore.WriteSyncer, safe for concurrent use. The zero value is ready.
//
// zap writes each record with one Write call, so Writes returns records
// exactly as they were written, and a test can tell a record that holds a
// line break from two records.
type Lines struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes [][]byte
}

func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, bytes.Clone(p))
	return l.buf.Write(p)
}

// Sync does nothing: everything written is already readable.
func (l *Lines) Sync() error { return nil }

// String is everything written so far.
func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Writes returns a copy of each Write's bytes, in order.
func (l *Lines) Writes() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]byte, len(l.writes))
	for i, w := range l.writes {
		out[i] = bytes.Clone(w)
	}
	return out
}

// Lines returns the complete lines written so far, without their "\n"; a
// line still being written is left out.
func (l *Lines) Lines() []string {
	s := l.String()
	end := strings.LastIndexByte(s, '\n')
	if end < 0 {
		return nil
	}
	return strings.Split(s[:end], "\n")
}

// Wait waits until at least n complete lines were written and returns the
// lines; it fails the test if that takes longer than timeout. Like
// t.Fatal, it must be called from the goroutine running the test.
func (l *Lines) Wait(t testing.TB, n int, timeout time.Duration) []string {
	t.Helper()
	WaitFor(t, func() bool { return len(l.Lines()) >= n }, timeout)
	return l.Lines()
}

// JSONRecords decodes lines that each hold one JSON object, as the tap's
// json format writes them, and keeps those whose "msg" is msg (all of them
// when msg is ""). A line that is not a JSON object fails the test.
func JSONRecords(t testing.TB, lines []string, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("testnet: record is not a JSON object: %v: %q", err, line)
		}
		if msg == "" || m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}
