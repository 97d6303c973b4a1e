package rules

import "fmt"

// Outcome is what happened to one exchange. The set is closed: every
// exchange ends with exactly one of these, and String is the exact text the
// log carries, so SIEM queries can be written against the constants.
type Outcome uint8

// The order is the wire contract only through String; the numeric values
// are private to the process.
const (
	OK                   Outcome = iota // exchange completed; for a tunnel: handshake done, data flowed, no reset
	DNSNXDomain                         // the name does not exist
	DNSFailure                          // SERVFAIL, REFUSED or a malformed answer
	DNSTimeout                          // no answer within dns.timeout
	ConnectRefused                      // TCP RST to our SYN
	ConnectTimeout                      // no SYN-ACK within timeouts.connect
	ConnectUnreachable                  // ENETUNREACH / EHOSTUNREACH / no usable address
	ConnectionReset                     // RST after the connection was up, either side
	TLSFailure                          // the TLS handshake never completed (alert, interception)
	HTTPError                           // origin or parent answered 4xx/5xx other than 407
	ParentAuthRequired                  // the parent proxy answered 407
	ParentUnreachable                   // the parent proxy could not be reached
	ProbeContentMismatch                // NCSI probe answered 200 with the wrong body
	ProbeRedirect                       // NCSI probe answered 30x (captive portal)
	ResponseTimeout                     // no response head within timeouts.response_header
	ClientAborted                       // the client went away before the exchange ended
	BadRequest                          // the request could not be parsed or is not proxyable
	Denied                              // the tap's own policy refused it
	Shutdown                            // the tap stopped while the exchange was in flight

	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	OK:                   "ok",
	DNSNXDomain:          "dns_nxdomain",
	DNSFailure:           "dns_failure",
	DNSTimeout:           "dns_timeout",
	ConnectRefused:       "connect_refused",
	ConnectTimeout:       "connect_timeout",
	ConnectUnreachable:   "connect_unreachable",
	ConnectionReset:      "connection_reset",
	TLSFailure:           "tls_failure",
	HTTPError:            "http_error",
	ParentAuthRequired:   "parent_auth_required",
	ParentUnreachable:    "parent_unreachable",
	ProbeContentMismatch: "probe_content_mismatch",
	ProbeRedirect:        "probe_redirect",
	ResponseTimeout:      "response_timeout",
	ClientAborted:        "client_aborted",
	BadRequest:           "bad_request",
	Denied:               "denied",
	Shutdown:             "shutdown",
}

// Outcomes lists every outcome in declaration order.
func Outcomes() []Outcome {
	out := make([]Outcome, numOutcomes)
	for i := range out {
		out[i] = Outcome(i)
	}
	return out
}

func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// ParseOutcome is the inverse of String.
func ParseOutcome(s string) (Outcome, error) {
	for i, name := range outcomeNames {
		if name == s {
			return Outcome(i), nil
		}
	}
	return 0, fmt.Errorf("rules: unknown outcome %q", s)
}

// Failed reports whether the outcome is a failure of the path (class failed).
func (o Outcome) Failed() bool { return o.Class() == ClassFailed }

// Class folds the outcome into the coarse class that dashboards group by.
func (o Outcome) Class() Class {
	switch o {
	case OK:
		return ClassOK
	case Denied, BadRequest:
		return ClassDenied
	case ClientAborted, Shutdown:
		return ClassAborted
	default:
		return ClassFailed
	}
}

// Class is the coarse fold of Outcome.
type Class uint8

const (
	ClassOK Class = iota
	ClassFailed
	ClassDenied
	ClassAborted

	numClasses
)

var classNames = [numClasses]string{
	ClassOK:      "ok",
	ClassFailed:  "failed",
	ClassDenied:  "denied",
	ClassAborted: "aborted",
}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass is the inverse of Class.String.
func ParseClass(s string) (Class, error) {
	for i, name := range classNames {
		if name == s {
			return Class(i), nil
		}
	}
	return 0, fmt.Errorf("rules: unknown class %q", s)
}
