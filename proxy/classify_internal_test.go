package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/m365tap/m365tap/rules"
)

// meanings is the shared table: what each kind of socket error must be
// classified as, on every system. The codes standing for each meaning are
// listed per system below, written from winerror.h and errno.h rather than
// taken from the tables under test.
var meanings = []struct {
	meaning string
	dial    rules.Outcome // classifyDial
	trip    rules.Outcome // classifyRoundTrip, the connection having been up
	reset   bool          // isReset
	timeout bool          // isTimeout
}{
	{"refused", rules.ConnectRefused, rules.ConnectionReset, false, false},
	{"reset", rules.ConnectionReset, rules.ConnectionReset, true, false},
	{"aborted", rules.ConnectUnreachable, rules.ConnectionReset, true, false},
	{"unreachable", rules.ConnectUnreachable, rules.ConnectionReset, false, false},
	{"timeout", rules.ConnectTimeout, rules.ResponseTimeout, false, true},
}

var codes = map[string]map[string][]syscall.Errno{
	"unix": {
		"refused":     {syscall.ECONNREFUSED},
		"reset":       {syscall.ECONNRESET},
		"aborted":     {syscall.EPIPE, syscall.ECONNABORTED},
		"unreachable": {syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.EADDRNOTAVAIL, syscall.ENETDOWN, syscall.EHOSTDOWN},
		"timeout":     {syscall.ETIMEDOUT},
	},
	"windows": {
		// WSAECONNREFUSED, ERROR_CONNECTION_REFUSED
		"refused": {10061, 1225},
		// WSAECONNRESET, WSAENETRESET, ERROR_NETNAME_DELETED
		"reset": {10054, 10052, 64},
		// WSAECONNABORTED, WSAESHUTDOWN, ERROR_CONNECTION_ABORTED
		"aborted": {10053, 10058, 1236},
		// WSAENETUNREACH, WSAEHOSTUNREACH, WSAENETDOWN, WSAEHOSTDOWN,
		// WSAEADDRNOTAVAIL, ERROR_NETWORK_UNREACHABLE, ERROR_HOST_UNREACHABLE
		"unreachable": {10051, 10065, 10050, 10064, 10049, 1231, 1232},
		// WSAETIMEDOUT, ERROR_SEM_TIMEOUT, ERROR_TIMEOUT
		"timeout": {10060, 121, 1460},
	},
}

var tables = map[string]*faultTable{"unix": &unixFaults, "windows": &windowsFaults}

// wrapped returns errno the ways Go's net package hands it over: bare,
// inside an os.SyscallError, and inside a *net.OpError as well.
func wrapped(errno syscall.Errno) []error {
	sc := os.NewSyscallError("connectex", errno)
	return []error{
		errno,
		sc,
		&net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 443}, Err: sc},
		&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("wsarecv", errno)},
	}
}

// TestFaultTables: every system's codes mean the same outcomes. Both tables
// are checked on every system; the running system's through the package's
// own entry points as well.
func TestFaultTables(t *testing.T) {
	if tables[osTable()] != sysFaults {
		t.Fatalf("the running system's table is not the %s one", osTable())
	}
	for sys, table := range tables {
		for _, m := range meanings {
			list := codes[sys][m.meaning]
			if len(list) == 0 {
				t.Errorf("%s: no codes for %q", sys, m.meaning)
			}
			for _, errno := range list {
				for _, err := range wrapped(errno) {
					if got := table.dial(err); got != m.dial {
						t.Errorf("%s %s %d %T: dial outcome %s, want %s", sys, m.meaning, errno, err, got, m.dial)
					}
					f := table.fault(err)
					if got := f == faultReset || f == faultAborted; got != m.reset {
						t.Errorf("%s %s %d %T: reset %v, want %v", sys, m.meaning, errno, err, got, m.reset)
					}
					if sys != osTable() {
						continue
					}
					if got := classifyDial(err); got != m.dial {
						t.Errorf("classifyDial(%s %d %T) = %s, want %s", m.meaning, errno, err, got, m.dial)
					}
					if got := classifyRoundTrip(err); got != m.trip {
						t.Errorf("classifyRoundTrip(%s %d %T) = %s, want %s", m.meaning, errno, err, got, m.trip)
					}
					if got := isReset(err); got != m.reset {
						t.Errorf("isReset(%s %d %T) = %v, want %v", m.meaning, errno, err, got, m.reset)
					}
					if got := isTimeout(err); got != m.timeout {
						t.Errorf("isTimeout(%s %d %T) = %v, want %v", m.meaning, errno, err, got, m.timeout)
					}
				}
			}
		}
	}
}

// TestResolverCodes: Windows' resolver codes, which Go reports as text in a
// DNSError, give the outcomes Linux's resolver gives for the same answer.
func TestResolverCodes(t *testing.T) {
	cases := []struct {
		name  string
		errno syscall.Errno
		want  rules.Outcome
	}{
		{"WSAHOST_NOT_FOUND", 11001, rules.DNSNXDomain},
		{"WSANO_DATA", 11004, rules.DNSNXDomain}, // Linux: NOERROR without records is "no such host"
		{"DNS_ERROR_RCODE_NAME_ERROR", 9003, rules.DNSNXDomain},
		{"DNS_INFO_NO_RECORDS", 9501, rules.DNSNXDomain},
		{"WSATRY_AGAIN", 11002, rules.DNSFailure}, // SERVFAIL, or no authoritative answer
		{"WSANO_RECOVERY", 11003, rules.DNSFailure},
		{"DNS_ERROR_RCODE_SERVER_FAILURE", 9002, rules.DNSFailure},
		{"DNS_ERROR_RCODE_REFUSED", 9005, rules.DNSFailure},
		{"WSAETIMEDOUT", 10060, rules.DNSTimeout},
		{"ERROR_TIMEOUT", 1460, rules.DNSTimeout},
		{"unknown", 12345, rules.DNSFailure},
	}
	for _, tc := range cases {
		for _, call := range []string{"getaddrinfow", "dnsquery"} {
			de := &net.DNSError{Err: call + ": " + tc.errno.Error(), Name: "login.microsoftonline.com"}
			if got := windowsFaults.dns(de); got != tc.want {
				t.Errorf("%s from %s: %s, want %s", tc.name, call, got, tc.want)
			}
			if osTable() == "windows" {
				if got := classifyDNS(de); got != tc.want {
					t.Errorf("classifyDNS(%s from %s) = %s, want %s", tc.name, call, got, tc.want)
				}
			}
		}
	}
	// Go's own flags win on every system.
	for sys, table := range tables {
		if got := table.dns(&net.DNSError{Err: "no such host", IsNotFound: true}); got != rules.DNSNXDomain {
			t.Errorf("%s: IsNotFound gave %s", sys, got)
		}
		if got := table.dns(&net.DNSError{Err: "i/o timeout", IsTimeout: true}); got != rules.DNSTimeout {
			t.Errorf("%s: IsTimeout gave %s", sys, got)
		}
		if got := table.dns(&net.DNSError{Err: "server misbehaving"}); got != rules.DNSFailure {
			t.Errorf("%s: server misbehaving gave %s", sys, got)
		}
	}
}

// TestFDFaults: running out of descriptors is the tap's fault on either
// system, in a socket call or inside a resolver's text.
func TestFDFaults(t *testing.T) {
	for sys, c := range map[string][2]syscall.Errno{
		"unix":    {syscall.EMFILE, syscall.ENFILE},
		"windows": {10024, 10055}, // WSAEMFILE, WSAENOBUFS
	} {
		table := tables[sys]
		for i, want := range []netFault{faultNoFDs, faultNoFDsSystem} {
			if got := table.fdFault(os.NewSyscallError("socket", c[i])); got != want {
				t.Errorf("%s %d: %d, want %d", sys, c[i], got, want)
			}
			de := &net.DNSError{Err: "dial udp 127.0.0.53:53: socket: " + c[i].Error()}
			if got := table.fdFault(de); got != want {
				t.Errorf("%s %d in a DNSError: %d, want %d", sys, c[i], got, want)
			}
		}
		if got := table.fdFault(io.EOF); got != faultNone {
			t.Errorf("%s: EOF is %d", sys, got)
		}
	}
}

// TestRealSocketErrors: what this system's sockets really return for a
// refused connection and a reset, through the running system's table (under
// wine in CI for the Windows build).
func TestRealSocketErrors(t *testing.T) {
	// Refused: a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.DialTimeout("tcp", addr, 10*time.Second)
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if got := classifyDial(err); got != rules.ConnectRefused {
		t.Errorf("refused dial %q: %s, want connect_refused", err, got)
	}

	// Reset: the peer closes with SO_LINGER 0 while the tap waits to read.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 1)
		c.Read(buf)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the peer's reset: %v", err)
	}
	if !isReset(err) {
		t.Errorf("read after the peer's reset %q: isReset false", err)
	}
	if got := classifyRoundTrip(err); got != rules.ConnectionReset {
		t.Errorf("read after the peer's reset %q: %s, want connection_reset", err, got)
	}
}
