package logs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365tap/m365tap/config"
)

// fakeRELP is a RELP server written from the specification (its own frame
// parser, not the sink's), which checks what the sink sends — an open with
// relp_version and commands=syslog first, then transaction numbers that
// count up from 2 on each connection — and answers as a test tells it to.
type fakeRELP struct {
	t  *testing.T
	ln net.Listener
	// answer decides, for the n-th syslog command of the c-th connection
	// (both from 1), whether to answer it; returning false ends the
	// connection without answering that command or any after it: with a
	// FIN after the answers already written, reading and ignoring what the
	// sink sends after it, or (abrupt) by closing with that data unread,
	// which is a reset, as when rsyslogd is killed.
	answer func(conn, n int) bool
	abrupt bool

	mu    sync.Mutex
	msgs  []syslogMsg // every syslog command received, in order
	conns int
	errs  []string
}

func newFakeRELP(t *testing.T, answer func(conn, n int) bool) *fakeRELP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRELP{t: t, ln: ln, answer: answer}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			n := f.conns
			f.mu.Unlock()
			go f.serve(c, n)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeRELP) fail(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// frame reads "TXNR SP COMMAND SP DATALEN [SP DATA] LF".
func fakeFrame(r *bufio.Reader) (txnr int, cmd string, data []byte, err error) {
	head, err := r.ReadString(' ')
	if err != nil {
		return 0, "", nil, err
	}
	if txnr, err = strconv.Atoi(strings.TrimSuffix(head, " ")); err != nil {
		return 0, "", nil, err
	}
	if cmd, err = r.ReadString(' '); err != nil {
		return 0, "", nil, err
	}
	cmd = strings.TrimSuffix(cmd, " ")
	var num []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, "", nil, err
		}
		if c == ' ' || c == '\n' {
			n, err := strconv.Atoi(string(num))
			if err != nil {
				return 0, "", nil, err
			}
			if c == '\n' {
				if n != 0 {
					return 0, "", nil, fmt.Errorf("DATALEN %d and no data", n)
				}
				return txnr, cmd, nil, nil
			}
			data = make([]byte, n+1)
			if _, err := io.ReadFull(r, data); err != nil {
				return 0, "", nil, err
			}
			if data[n] != '\n' {
				return 0, "", nil, fmt.Errorf("no LF after %d bytes of data", n)
			}
			return txnr, cmd, data[:n], nil
		}
		num = append(num, c)
	}
}

func (f *fakeRELP) serve(c net.Conn, conn int) {
	defer c.Close()
	r := bufio.NewReader(c)
	txnr, cmd, data, err := fakeFrame(r)
	if err != nil {
		f.fail("connection %d: first frame: %v", conn, err)
		return
	}
	if txnr != 1 || cmd != "open" || !bytes.Contains(data, []byte("relp_version=0")) || !bytes.Contains(data, []byte("commands=syslog")) {
		f.fail("connection %d: first frame %d %s %q; want 1 open with relp_version=0 and commands=syslog", conn, txnr, cmd, data)
		return
	}
	offers := "200 OK\nrelp_version=0\nrelp_software=fake\ncommands=syslog"
	fmt.Fprintf(c, "1 rsp %d %s\n", len(offers), offers)
	for n := 1; ; n++ {
		txnr, cmd, data, err := fakeFrame(r)
		if err != nil {
			if err != io.EOF {
				f.fail("connection %d: frame %d: %v", conn, n, err)
			}
			return
		}
		if txnr != n+1 {
			f.fail("connection %d: command %d has transaction %d; want %d", conn, n, txnr, n+1)
			return
		}
		if cmd == "close" {
			fmt.Fprintf(c, "%d rsp 0\n0 serverclose 0\n", txnr)
			return
		}
		if cmd != "syslog" {
			f.fail("connection %d: command %q", conn, cmd)
			return
		}
		m, err := parseSyslog(string(data))
		if err != nil {
			f.fail("connection %d: syslog command %d: %v", conn, n, err)
			return
		}
		f.mu.Lock()
		f.msgs = append(f.msgs, m)
		f.mu.Unlock()
		if !f.answer(conn, n) {
			if !f.abrupt {
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, r)
			}
			return
		}
		fmt.Fprintf(c, "%d rsp 6 200 OK\n", txnr)
	}
}

func (f *fakeRELP) received() []syslogMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		f.t.Fatalf("fake RELP server: %v", f.errs)
	}
	return slices.Clone(f.msgs)
}

// TestRELPResendsUnanswered: the receiver answers the first 60 events of
// the first connection, takes the 61st without answering and ends the
// connection. Closed cleanly, the sink sends again what was not answered,
// and only that: the 61st arrives twice, every other event once. Closed
// with a reset (unread data in the receiver's socket, as when rsyslogd is
// killed), the receiver's kernel discards answers it had not sent yet, so
// events that were answered may come again too: every event arrives, some
// more than once. The same for a receiver that breaks after every 25
// answers.
func TestRELPResendsUnanswered(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer func(conn, n int) bool
		abrupt bool
		total  int
		twice  []int
	}{
		{"one break", func(conn, n int) bool { return conn > 1 || n <= 60 }, false, 100, span(61, 61)},
		{"one reset", func(conn, n int) bool { return conn > 1 || n <= 60 }, true, 100, nil},
		{"a break every 25", func(conn, n int) bool { return n <= 25 }, false, 200, nil},
		{"a reset every 25", func(conn, n int) bool { return n <= 25 }, true, 200, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeRELP(t, c.answer)
			f.abrupt = c.abrupt
			sk := config.Sink{Type: "syslog", Network: "relp", Address: f.ln.Addr().String()}
			e := newSyslogLogs(t, sk, 5*time.Second)
			logSeq(e.lg, 1, c.total)
			waitFor(t, "every event answered", 20*time.Second, func() bool { return queued(e.lg, 0) == 0 })
			if err := e.lg.Close(); err != nil {
				t.Fatal(err)
			}
			ids, _ := payloadIDs(t, f.received())
			count := map[int]int{}
			for _, id := range ids {
				count[id]++
			}
			var twice []int
			for id := 1; id <= c.total; id++ {
				switch count[id] {
				case 0:
					t.Errorf("id %d never arrived", id)
				case 1:
				case 2:
					twice = append(twice, id)
				default:
					if !c.abrupt {
						t.Errorf("id %d arrived %d times", id, count[id])
					}
					twice = append(twice, id)
				}
			}
			// On the first connection, the one unanswered command that
			// ended it is what comes twice (the sink may have written a
			// few more before the connection died, which the server never
			// read: those come once).
			if c.twice != nil && !slices.Equal(twice, c.twice) {
				t.Errorf("arrived twice: %v; want %v", twice, c.twice)
			}
			// In order, apart from the resends.
			last := 0
			for _, id := range ids {
				if id > last+1 {
					t.Fatalf("id %d arrived after %d: a gap", id, last)
				}
				last = max(last, id)
			}
			t.Logf("%d events, %d connections, %d arrived twice", c.total, f.conns, len(twice))
		})
	}
}

// TestRELPRefused: a receiver that does not offer the syslog command is
// not used; the sink says so on stderr and keeps the events.
func TestRELPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			if _, _, _, err := fakeFrame(r); err == nil {
				offers := "200 OK\nrelp_version=0\ncommands="
				fmt.Fprintf(c, "1 rsp %d %s\n", len(offers), offers)
			}
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
	}()
	e := newSyslogLogs(t, config.Sink{Type: "syslog", Network: "relp", Address: ln.Addr().String()}, 100*time.Millisecond)
	logSeq(e.lg, 1, 5)
	waitFor(t, "the refusal on stderr", 10*time.Second, func() bool {
		return strings.Contains(e.stderr.String(), "does not accept the syslog command")
	})
	if n := queued(e.lg, 0); n != 5 {
		t.Errorf("%d events queued; want the 5 logged", n)
	}
	e.lg.Close()
}

// FuzzReadRELP: whatever a receiver sends, the answer parser returns a
// frame within the protocol's bounds or an error, and never panics; a
// frame written by appendRELP reads back as written.
func FuzzReadRELP(f *testing.F) {
	f.Add([]byte("1 rsp 93 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n"))
	f.Add([]byte("2 rsp 6 200 OK\n3 rsp 6 200 OK\n4 rsp 0\n0 serverclose 0\n"))
	f.Add([]byte("999999999 rsp 12 500 disabled\n"))
	f.Add([]byte("1 rsp 99999999999 x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		var buf []byte
		for range 100 {
			fr, nb, err := readRELP(r, buf)
			buf = nb
			if err != nil {
				break
			}
			if fr.cmd == "" || len(fr.cmd) > 32 || len(fr.data) > relpMaxFrame || fr.txnr > relpMaxTxnr {
				t.Fatalf("frame out of bounds: %d %q (%d bytes)", fr.txnr, fr.cmd, len(fr.data))
			}
			if strings.ContainsAny(fr.cmd, " \n") {
				continue // a command with a space cannot be written back
			}
			again, _, err := readRELP(bufio.NewReader(bytes.NewReader(appendRELP(nil, fr.txnr, fr.cmd, fr.data))), nil)
			if err != nil || again.txnr != fr.txnr || again.cmd != fr.cmd || !bytes.Equal(again.data, fr.data) {
				t.Fatalf("%d %q %q written and read back: %d %q %q, %v", fr.txnr, fr.cmd, fr.data, again.txnr, again.cmd, again.data, err)
			}
		}
	})
}
