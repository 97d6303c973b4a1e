package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/m365tap/m365tap/rules"
)

// uploadOutcome classifies what went wrong while the request body was read
// from the client. A body net/http could not decode (malformed chunked
// encoding, a chunk size line too long or not hexadecimal) is the client's
// own bad request, which a server would answer 400: bad_request. Anything
// else (the connection ended mid-body, was reset, timed out), and nil (the
// request's context ended), means the client went away: client_aborted.
//
// net/http's chunked decoder reports its complaints as unexported plain
// errors, so a malformed body is recognised by elimination: an error that
// is neither an early end of the stream nor one of the network's.
func uploadOutcome(err error) rules.Outcome {
	var ne net.Error
	var errno syscall.Errno
	switch {
	case err == nil,
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, http.ErrBodyReadAfterClose),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne), errors.As(err, &errno):
		return rules.ClientAborted
	}
	return rules.BadRequest
}
