package upstream

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"
)

// Stepper is one run of the tap's own authentication handshake on one
// connection (proxyauth.Handshake): the first call gets no challenges, each
// later one the Proxy-Authenticate values of the parent's 407.
type Stepper interface {
	Step(challenges []string) (string, error)
}

// maxLegs bounds a handshake: NTLM needs two 407-answered legs at most
// (anonymous, Type 1), Negotiate one or two. More is a parent that keeps
// refusing.
const maxLegs = 4

// MaxReplayBody is how much of a request body the tap keeps to send again
// on each leg of its own handshake. A larger body cannot be replayed, and
// the exchange fails with ErrBodyTooLarge instead of sending half of it.
const MaxReplayBody = 64 << 10

// ErrBodyTooLarge: see MaxReplayBody.
var ErrBodyTooLarge = errors.New("upstream: request body too large to replay through the tap's authentication handshake (limit 64 KiB)")

// handshake runs the legs of hs: send sends one leg with its
// Proxy-Authorization value, until the parent answers something other than
// 407, hs gives up, the legs run out or the connection cannot go on. The
// last answer is returned; a 407 then means the parent refused.
func (c *Conn) handshake(hs Stepper, send func(auth string) (*http.Response, error)) (*http.Response, error) {
	var (
		challenges []string
		last       *http.Response
	)
	for leg := 0; ; leg++ {
		v, err := hs.Step(challenges)
		if err != nil {
			// After a 407, the handshake giving up (the parent refused
			// the last leg) is the parent's answer, not an error of ours.
			if last != nil {
				return last, nil
			}
			return nil, err
		}
		resp, err := send(v)
		if err != nil || resp.StatusCode != http.StatusProxyAuthRequired || leg+1 >= maxLegs || !c.usable {
			return resp, err
		}
		last, challenges = resp, resp.Header.Values("Proxy-Authenticate")
	}
}

// ConnectAuth is Connect with the tap's credentials, each leg's
// Proxy-Authorization from hs (see handshake).
func (c *Conn) ConnectAuth(target string, h http.Header, hs Stepper, deadline time.Time) (*http.Response, error) {
	return c.handshake(hs, func(auth string) (*http.Response, error) {
		h.Set("Proxy-Authorization", auth)
		defer h.Del("Proxy-Authorization")
		return c.Connect(target, h, deadline)
	})
}

// RoundTripAuth is RoundTrip with the tap's credentials. A body is kept in
// memory (up to MaxReplayBody) so that each leg can send it whole.
func (c *Conn) RoundTripAuth(r *http.Request, hs Stepper, expectWait time.Duration, headDeadline func() time.Time) (*http.Response, error) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxReplayBody+1))
		if err != nil {
			return nil, err
		}
		if len(b) > MaxReplayBody {
			return nil, ErrBodyTooLarge
		}
		body = b
	}
	return c.handshake(hs, func(auth string) (*http.Response, error) {
		r2 := *r
		// Every leg must find the connection open: the tap closes it
		// itself once the exchange is done, whatever the client asked.
		r2.Close = false
		r2.Header = r.Header.Clone()
		r2.Header.Set("Proxy-Authorization", auth)
		if body != nil {
			r2.Body = io.NopCloser(bytes.NewReader(body))
			r2.ContentLength = int64(len(body))
			r2.TransferEncoding = nil
		}
		return c.RoundTrip(&r2, expectWait, headDeadline())
	})
}
