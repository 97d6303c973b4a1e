package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/m365tap/m365tap/rules"
)

// failure is an error the tap has already classified: the outcome for the
// log, the status for the client, and the raw error for the operator.
type failure struct {
	outcome rules.Outcome
	status  int // what the client is told
	// upstream is set when a parent answered a CONNECT with a non-200 status.
	upstream          int
	proxyAuthenticate []string
	err               error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func newFailure(o rules.Outcome, err error) *failure {
	return &failure{outcome: o, status: clientStatus(o), err: err}
}

// clientStatus is what a client is told for an outcome: dial failures are a
// bad gateway, waiting too long is a gateway timeout. The reason goes in the
// X-M365tap-Outcome header, never raw error text with internal addresses.
func clientStatus(o rules.Outcome) int {
	switch o {
	case rules.DNSTimeout, rules.ConnectTimeout, rules.ResponseTimeout:
		return http.StatusGatewayTimeout
	case rules.ParentAuthRequired:
		return http.StatusProxyAuthRequired
	case rules.Denied:
		return http.StatusForbidden
	case rules.BadRequest:
		return http.StatusBadRequest
	case rules.Shutdown:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// classifyDNS maps a resolver error by the running system's table.
func classifyDNS(err error) rules.Outcome { return sysFaults.dns(err) }

// classifyDial maps an error from connecting a TCP socket to a resolved
// address by the running system's table.
func classifyDial(err error) rules.Outcome { return sysFaults.dial(err) }

// dns maps a resolver error. Go reports SERVFAIL and REFUSED as "server
// misbehaving" and a malformed answer as a non-timeout, non-NotFound
// DNSError: all of those are dns_failure. A system resolver's code that Go
// leaves unflagged (Windows' WSANO_DATA) is looked up by its meaning.
func (t *faultTable) dns(err error) rules.Outcome {
	var de *net.DNSError
	if errors.As(err, &de) {
		switch {
		case de.IsNotFound:
			return rules.DNSNXDomain
		case de.IsTimeout:
			return rules.DNSTimeout
		}
		switch t.dnsFault(de) {
		case faultNoSuchHost:
			return rules.DNSNXDomain
		case faultDNSTimeout:
			return rules.DNSTimeout
		}
		return rules.DNSFailure
	}
	if isTimeout(err) {
		return rules.DNSTimeout
	}
	return rules.DNSFailure
}

// dial maps an error from connecting a TCP socket. A local abort while
// connecting is no statement about the path, so it stays unreachable.
func (t *faultTable) dial(err error) rules.Outcome {
	switch t.fault(err) {
	case faultRefused:
		return rules.ConnectRefused
	case faultReset:
		return rules.ConnectionReset
	case faultUnreachable:
		return rules.ConnectUnreachable
	case faultTimeout:
		return rules.ConnectTimeout
	}
	if isTimeout(err) {
		return rules.ConnectTimeout
	}
	return rules.ConnectUnreachable
}

// fdError is the tap running out of file descriptors (EMFILE: its own
// limit, ENFILE: the system's) when it needed a socket for a lookup or a
// connection. Nothing went on the wire: the destination was never tried.
//
// It keeps the outcome of the phase it happened in (dns_failure,
// connect_unreachable, parent_unreachable through a parent) rather than
// adding one to the closed set: an outcome is a contract with every encoder
// (CEF names, ECS mappings), report and SIEM query, and this is a fault of
// the machine the tap runs on that the operator fixes once, not a state of
// the path to watch for. What makes it distinguishable instead: the error
// text says so in plain words, the exchange gets no article cause (the
// endpoint is not to blame, see exchange.cause), and the client is told
// 503 Service Unavailable, like a connection over access.max_conns, instead
// of the 502 of a path that failed.
type fdError struct {
	fault netFault // faultNoFDs or faultNoFDsSystem
	op    string   // "dialing 192.0.2.1:443", "looking up login.microsoftonline.com"
	err   error
}

func (e *fdError) Error() string {
	limit := "the tap's own limit (EMFILE)"
	if e.fault == faultNoFDsSystem {
		limit = "the system-wide limit (ENFILE)"
	}
	return "m365tap: out of file descriptors " + e.op + ": " + limit + " was reached before anything was sent, " +
		"so the destination was not tried; raise the limit (ulimit -n, systemd LimitNOFILE=) or lower access.max_conns"
}

func (e *fdError) Unwrap() error { return e.err }

// tapFailure returns a failure for err when it is the tap out of file
// descriptors, else nil.
func tapFailure(o rules.Outcome, op string, err error) *failure {
	f := sysFaults.fdFault(err)
	if f == faultNone {
		return nil
	}
	return &failure{outcome: o, status: http.StatusServiceUnavailable, err: &fdError{fault: f, op: op, err: err}}
}

// fdFault is faultNoFDs or faultNoFDsSystem when err is the tap out of
// descriptors, else faultNone. The resolver reports a failed dial as text
// only, so a DNS error is recognised by the code's message.
func (t *faultTable) fdFault(err error) netFault {
	if f := t.fault(err); f == faultNoFDs || f == faultNoFDsSystem {
		return f
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		for errno, f := range t.socket {
			if (f == faultNoFDs || f == faultNoFDsSystem) && strings.HasSuffix(de.Err, errno.Error()) {
				return f
			}
		}
	}
	return faultNone
}

// isTapFault reports an error that is the tap's own, not the path's.
func isTapFault(err error) bool {
	var e *fdError
	return errors.As(err, &e)
}

// classifyRoundTrip maps an http.Transport error that the dialer did not
// already classify: the connection was up, so it failed while waiting for or
// reading the response.
func classifyRoundTrip(err error) rules.Outcome {
	var f *failure
	if errors.As(err, &f) {
		return f.outcome
	}
	switch {
	case isReset(err):
		return rules.ConnectionReset
	case isTimeout(err):
		return rules.ResponseTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The server closed without answering: to the client it is the same
		// as a reset, and it is what a filtering middlebox does.
		return rules.ConnectionReset
	case strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return rules.TLSFailure
	}
	return rules.ConnectionReset
}

// isReset reports a connection reset by the peer or torn down under the
// tap, on any system.
func isReset(err error) bool {
	f := sysFaults.fault(err)
	return f == faultReset || f == faultAborted
}

// isTimeout reports a deadline, a net.Error that says it timed out, or a
// system's own timeout code (Windows' WSAETIMEDOUT does not call itself a
// timeout to Go).
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return sysFaults.fault(err) == faultTimeout
}

// sanitize bounds error text for the log. Encoders escape control characters
// and invalid UTF-8 themselves; this only keeps a runaway message short.
func sanitize(s string) string {
	const max = 512
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// printable renders the first bytes of a body for the log: printable ASCII
// kept, everything else as '.', so a block page's title is readable without
// letting binary or terminal escapes into the event.
func printable(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 0x20 && c < 0x7f {
			out[i] = c
		} else {
			out[i] = '.'
		}
	}
	return string(out)
}

// errorf keeps fmt out of hot paths' signatures.
func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
