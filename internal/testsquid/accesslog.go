package testsquid

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Entry is one line of Squid's access log: one request as Squid saw it.
type Entry struct {
	// Client is the address the request came from, ip:port: a client's
	// own when it talks to Squid directly, the tap's when through it.
	Client string
	// Status is the status Squid answered (0 when the client went away
	// first).
	Status int
	// Method is the request method; URL the absolute URL, or host:port
	// for CONNECT.
	Method, URL string
	// User is the name Squid authenticated the request as; empty for none.
	// A 407 leg of a handshake has none.
	User string
	// Result is Squid's result code, e.g. TCP_MISS, TCP_TUNNEL, TCP_DENIED.
	Result string
}

// String is the entry as a test prints it.
func (e Entry) String() string {
	u := e.User
	if u == "" {
		u = "-"
	}
	return fmt.Sprintf("%s %s %d %s user=%s", e.Method, e.URL, e.Status, e.Result, u)
}

// Entries returns every request Squid has logged so far, in order.
// Connections closed without a request are left out.
func (s *Squid) Entries(t testing.TB) []Entry {
	t.Helper()
	b, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatalf("testsquid: access log: %v", err)
	}
	var out []Entry
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, "\n") {
			break // being written
		}
		e, err := parseEntry(strings.TrimSuffix(line, "\n"))
		if err != nil {
			t.Fatalf("testsquid: access log: %v", err)
		}
		// Squid logs a connection closed before it sent a request
		// ("error:transaction-end-before-headers"): the readiness check's,
		// or a spare connection a client's pool dialed and never used.
		// Neither is a request.
		if e.Method == "-" && strings.HasPrefix(e.URL, "error:transaction-end-before-headers") {
			continue
		}
		out = append(out, e)
	}
	return out
}

func parseEntry(line string) (Entry, error) {
	f := strings.Fields(line)
	if len(f) != 8 {
		return Entry{}, fmt.Errorf("line %q: want 8 fields (%s)", line, logFormat)
	}
	status, err := strconv.Atoi(f[3])
	if err != nil {
		return Entry{}, fmt.Errorf("line %q: status %q: %v", line, f[3], err)
	}
	e := Entry{Client: f[1] + ":" + f[2], Status: status, Method: f[4], URL: f[5], Result: f[7]}
	if f[6] != "-" {
		// Squid %-encodes characters of a user name that are unsafe in a
		// log line (a space, a backslash).
		if e.User, err = url.PathUnescape(f[6]); err != nil {
			e.User = f[6]
		}
	}
	return e, nil
}

// Mark is the number of entries logged so far, for Since.
func (s *Squid) Mark(t testing.TB) int {
	t.Helper()
	return len(s.Entries(t))
}

// Since waits until at least n entries follow mark, then returns all of
// them after a short settle time (Squid logs a request when it ends, a
// tunnel when it closes). After timeout it returns what there is without
// failing, so a test can show what was logged instead of a bare timeout.
func (s *Squid) Since(t testing.TB, mark, n int, timeout time.Duration) []Entry {
	t.Helper()
	return s.SinceMatching(t, mark, n, timeout, nil)
}

// SinceMatching is Since counting only the entries keep accepts (nil: all),
// for tests that share one Squid concurrently and tell their requests apart
// by URL.
func (s *Squid) SinceMatching(t testing.TB, mark, n int, timeout time.Duration, keep func(Entry) bool) []Entry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := matching(s.Entries(t), mark, keep)
		if len(got) >= n {
			time.Sleep(50 * time.Millisecond)
			return matching(s.Entries(t), mark, keep)
		}
		if time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func matching(all []Entry, mark int, keep func(Entry) bool) []Entry {
	all = all[min(mark, len(all)):]
	if keep == nil {
		return all
	}
	var out []Entry
	for _, e := range all {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// WaitEntries waits until at least n entries follow mark and returns them;
// it fails the test if they do not come within 10 s.
func (s *Squid) WaitEntries(t testing.TB, mark, n int) []Entry {
	t.Helper()
	e := s.Since(t, mark, n, 10*time.Second)
	if len(e) < n {
		t.Fatalf("testsquid: want %d access-log entries, got %d within 10 s: %v", n, len(e), e)
	}
	return e
}

// Settle waits until the log has not grown for 200 ms (at most 10 s) and
// returns the entries after mark: for a test that cannot know how many
// requests a client made (the legs of a handshake, a tunnel logged when
// it closes).
func (s *Squid) Settle(t testing.TB, mark int) []Entry {
	t.Helper()
	return s.SettleMatching(t, mark, nil)
}

// SettleMatching is Settle watching only the entries keep accepts (nil:
// all), so that other tests' requests to the same Squid do not keep it
// waiting.
func (s *Squid) SettleMatching(t testing.TB, mark int, keep func(Entry) bool) []Entry {
	t.Helper()
	const quiet = 200 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	n, since := -1, time.Now()
	for {
		got := matching(s.Entries(t), mark, keep)
		if len(got) != n {
			n, since = len(got), time.Now()
		}
		if time.Since(since) >= quiet || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}
