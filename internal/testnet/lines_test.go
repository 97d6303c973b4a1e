package testnet

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLines: writes from many goroutines each stay whole, Lines leaves out
// a line still being written, and Wait returns once enough lines are in.
func TestLines(t *testing.T) {
	t.Parallel()
	var l Lines
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { io.WriteString(&l, strings.Repeat("x", i)+"\n") })
	}
	wg.Wait()
	if n := len(l.Writes()); n != 50 {
		t.Fatalf("%d writes, want 50", n)
	}
	for _, w := range l.Writes() {
		if strings.Count(string(w), "\n") != 1 || strings.Trim(string(w), "x\n") != "" {
			t.Fatalf("write %q torn or merged", w)
		}
	}
	io.WriteString(&l, `{"msg":"half"`)
	if n := len(l.Lines()); n != 50 {
		t.Fatalf("%d lines, want 50 (the unfinished one left out)", n)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		io.WriteString(&l, "}\n")
	}()
	if lines := l.Wait(t, 51, 5*time.Second); lines[50] != `{"msg":"half"}` {
		t.Fatalf("last line %q", lines[50])
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestJSONRecords(t *testing.T) {
	t.Parallel()
	lines := []string{`{"msg":"exchange","id":1}`, `{"msg":"start"}`, `{"msg":"exchange","id":2}`}
	if got := JSONRecords(t, lines, "exchange"); len(got) != 2 || got[1]["id"] != float64(2) {
		t.Errorf("exchange records %v", got)
	}
	if got := JSONRecords(t, lines, ""); len(got) != 3 {
		t.Errorf("all records %v", got)
	}
}

// TestServe: the handler gets each connection, which is closed when it
// returns.
func TestServe(t *testing.T) {
	t.Parallel()
	s := Serve(t, func(c *net.TCPConn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, strings.ToUpper(line))
	})
	for range 2 {
		c := dial(t, s.Addr())
		_, err := io.WriteString(c, "ping\n")
		must(t, err)
		must(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		got, err := io.ReadAll(c) // EOF: closed after the handler returned
		must(t, err)
		if string(got) != "PING\n" {
			t.Fatalf("got %q", got)
		}
	}
	if s.Accepted() != 2 {
		t.Errorf("accepted %d, want 2", s.Accepted())
	}
}
