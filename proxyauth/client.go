package proxyauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	ntlmssp "github.com/Azure/go-ntlmssp"
)

// Client holds the tap's own credentials for a parent proxy. It is safe for
// concurrent use: each parent connection gets its own Handshake.
type Client interface {
	// Scheme is the scheme the client answers with (SSPI speaks
	// SchemeNegotiate); events carry it as proxy_auth_scheme.
	Scheme() Scheme
	// Start begins a handshake for a new parent connection. An error
	// means no credential can be had at all (no Kerberos ticket and no
	// NTLM fallback, for instance).
	Start() (Handshake, error)
}

// Handshake is one authentication on one parent connection. NTLM and
// Negotiate authenticate the connection, not a request: every leg must go
// out on the same connection, and it must not be used for anyone else.
// Not safe for concurrent use.
type Handshake interface {
	// Step returns the next Proxy-Authorization value to send. First
	// call: challenges == nil (every scheme here sends its first leg at
	// once, as curl and WinINET do once they know the proxy's scheme).
	// Later calls: the Proxy-Authenticate values of the parent's 407 on
	// the same connection, in order. An error means the handshake cannot
	// go on: ErrRejected when the parent answered the final leg with 407
	// again (a wrong password, an account the parent refuses), or an
	// error wrapping ErrNotOffered when the 407 offers nothing this
	// client speaks.
	Step(challenges []string) (string, error)
}

// Sentinel errors a caller branches on.
var (
	// ErrRejected: the parent answered the handshake's last leg with 407.
	// Trying again with the same credential would only count towards an
	// account lockout.
	ErrRejected = errors.New("proxyauth: the parent proxy rejected the credentials")
	// ErrNotOffered: the parent's 407 does not offer the client's scheme.
	ErrNotOffered = errors.New("proxyauth: the parent proxy does not offer the scheme")
)

func notOffered(want Scheme, challenges []string) error {
	return fmt.Errorf("%w %s: it offers %q", ErrNotOffered, want, Offered(challenges))
}

// offers reports whether a 407's Proxy-Authenticate values offer s, and
// returns the token68 of the first challenge of that scheme that carries
// one ("" when it is bare, as a first "NTLM" or "Negotiate" is). NTLM and
// Negotiate tokens stand alone in their value.
func offers(values []string, s Scheme) (token string, ok bool) {
	for _, v := range values {
		for o := range challenges(v) {
			if o == s {
				ok = true
			}
		}
		if token == "" && SchemeOf(v) == s {
			token = token68(v)
		}
	}
	return token, ok
}

// token68 returns what follows the scheme of a single challenge when it is
// a token68 (RFC 9110 §11.2), or "".
func token68(v string) string {
	v = trimOWS(v)
	i := 0
	for i < len(v) && isTchar(v[i]) {
		i++
	}
	v = strings.TrimRight(trimOWS(v[i:]), " \t")
	j := 0
	for j < len(v) && isToken68(v[j]) {
		j++
	}
	if j == 0 {
		return ""
	}
	for k := j; k < len(v); k++ {
		if v[k] != '=' {
			return ""
		}
	}
	return v
}

// basicClient sends user:password at once (RFC 7617).
type basicClient struct{ header string }

// NewBasic returns a Client for Basic. The header is built once; the
// password is kept only inside it.
func NewBasic(user, password string) Client {
	return basicClient{header: "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}
}

func (basicClient) Scheme() Scheme { return SchemeBasic }

func (c basicClient) Start() (Handshake, error) {
	return &oneLeg{scheme: SchemeBasic, header: c.header}, nil
}

// oneLeg is a handshake of one leg (Basic, a Kerberos AP-REQ): the
// credential is accepted or it is not; a 407 after it is a refusal.
type oneLeg struct {
	scheme Scheme
	header string
	sent   bool
}

func (h *oneLeg) Step(challenges []string) (string, error) {
	if !h.sent {
		h.sent = true
		return h.header, nil
	}
	if _, ok := offers(challenges, h.scheme); !ok {
		return "", notOffered(h.scheme, challenges)
	}
	return "", ErrRejected
}

// ntlmCreds are NTLMv2 credentials.
type ntlmCreds struct {
	domain, user, password, workstation string
}

func (c ntlmCreds) valid() bool { return c.user != "" && c.password != "" }

// NewNTLM returns a Client for NTLM with NTLMv2 responses (go-ntlmssp).
// domain is the user's NetBIOS domain (CORP); empty for a local account
// of the proxy's machine. workstation is the name the tap gives for
// itself; empty is usual. NTLMv1 is never used: go-ntlmssp refuses a
// server that asks for it.
func NewNTLM(domain, user, password, workstation string) Client {
	return ntlmClient{scheme: SchemeNTLM, creds: ntlmCreds{domain, user, password, workstation}}
}

type ntlmClient struct {
	scheme Scheme // SchemeNTLM, or SchemeNegotiate for the fallback
	creds  ntlmCreds
}

func (c ntlmClient) Scheme() Scheme { return c.scheme }

func (c ntlmClient) Start() (Handshake, error) {
	return &ntlmHandshake{scheme: c.scheme, creds: c.creds}, nil
}

// ntlmHandshake runs NEGOTIATE → CHALLENGE → AUTHENTICATE (MS-NLMP §3.1).
// Under Negotiate the messages go raw, as Windows sends them when it falls
// back from Kerberos; proxies that accept Negotiate with NTLM (Squid's
// negotiate_wrapper_auth, Microsoft's) recognise the NTLMSSP signature.
type ntlmHandshake struct {
	scheme Scheme
	creds  ntlmCreds
	leg    int
}

func (h *ntlmHandshake) Step(challenges []string) (string, error) {
	switch h.leg {
	case 0:
		if challenges != nil {
			if _, ok := offers(challenges, h.scheme); !ok {
				return "", notOffered(h.scheme, challenges)
			}
		}
		msg, err := ntlmssp.NewNegotiateMessage("", "")
		if err != nil {
			return "", fmt.Errorf("proxyauth: NTLM negotiate message: %w", err)
		}
		h.leg = 1
		return h.scheme.wire() + " " + base64.StdEncoding.EncodeToString(msg), nil
	case 1:
		tok, ok := offers(challenges, h.scheme)
		if !ok {
			return "", notOffered(h.scheme, challenges)
		}
		if tok == "" {
			// A bare "NTLM" after our NEGOTIATE message: the parent
			// refused to start the exchange.
			h.leg = 2
			return "", ErrRejected
		}
		challenge, ok := decodeBase64(tok)
		if !ok {
			return "", fmt.Errorf("proxyauth: the parent's %s challenge is not base64", h.scheme)
		}
		user := h.creds.user
		if h.creds.domain != "" {
			user = h.creds.domain + `\` + user
		}
		msg, err := ntlmssp.NewAuthenticateMessage(challenge, user, h.creds.password,
			&ntlmssp.AuthenticateMessageOptions{WorkstationName: h.creds.workstation})
		if err != nil {
			return "", fmt.Errorf("proxyauth: NTLM authenticate message: %w", err)
		}
		h.leg = 2
		return h.scheme.wire() + " " + base64.StdEncoding.EncodeToString(msg), nil
	}
	return "", ErrRejected
}
