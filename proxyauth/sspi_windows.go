//go:build windows

package proxyauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"

	"github.com/alexbrainman/sspi"
	"github.com/alexbrainman/sspi/negotiate"
)

// NewSSPI returns a Client that authenticates as the logged-on Windows
// user (or the service's account) through SSPI's Negotiate package:
// Kerberos for spn ("HTTP/proxy.corp.example") when a ticket can be had,
// else NTLM, exactly as Windows' own clients choose. The credential handle
// is acquired once and shared by every handshake.
func NewSSPI(spn string) (Client, error) {
	if spn == "" {
		return nil, errors.New("proxyauth: sspi needs the parent's SPN, such as HTTP/proxy.corp.example")
	}
	cred, err := negotiate.AcquireCurrentUserCredentials()
	if err != nil {
		return nil, fmt.Errorf("proxyauth: sspi: AcquireCredentialsHandle: %w", err)
	}
	return &sspiClient{spn: spn, cred: cred}, nil
}

type sspiClient struct {
	spn  string
	cred *sspi.Credentials
}

func (c *sspiClient) Scheme() Scheme { return SchemeNegotiate }

func (c *sspiClient) Start() (Handshake, error) {
	return &sspiHandshake{c: c}, nil
}

// sspiHandshake drives one security context: InitializeSecurityContext
// with no input first, then with each token the parent returns.
type sspiHandshake struct {
	c    *sspiClient
	ctx  *negotiate.ClientContext
	done bool
}

func (h *sspiHandshake) Step(challenges []string) (string, error) {
	if h.ctx == nil && !h.done {
		ctx, out, err := negotiate.NewClientContext(h.c.cred, h.c.spn)
		if err != nil {
			return "", fmt.Errorf("proxyauth: sspi: InitializeSecurityContext for %s: %w", h.c.spn, err)
		}
		h.ctx = ctx
		// A Kerberos context is complete only with the parent's mutual
		// authentication token, which comes on its 200 and is not fed
		// back: release the handle when the handshake is dropped.
		runtime.AddCleanup(h, func(c *negotiate.ClientContext) { _ = c.Release() }, ctx)
		return "Negotiate " + base64.StdEncoding.EncodeToString(out), nil
	}
	tok, ok := offers(challenges, SchemeNegotiate)
	if !ok {
		return "", notOffered(SchemeNegotiate, challenges)
	}
	if tok == "" || h.done || h.ctx == nil {
		return "", ErrRejected
	}
	in, ok := decodeBase64(tok)
	if !ok {
		return "", errors.New("proxyauth: the parent's Negotiate token is not base64")
	}
	done, out, err := h.ctx.Update(in)
	if err != nil {
		return "", fmt.Errorf("proxyauth: sspi: InitializeSecurityContext for %s: %w", h.c.spn, err)
	}
	h.done = done
	if len(out) == 0 {
		return "", ErrRejected
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(out), nil
}
