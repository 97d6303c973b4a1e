package proxyauth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"

	"golang.org/x/crypto/md4"
)

// This file is the test's own NTLM server side (MS-NLMP): a CHALLENGE
// message builder and an NTLMv2 verifier that checks an AUTHENTICATE
// message against known passwords, independently of the client code
// under test.

const (
	flagUnicode     = 0x00000001
	flagRequestTgt  = 0x00000004
	flagNTLM        = 0x00000200
	flagAlwaysSign  = 0x00008000
	flagTargetDom   = 0x00010000
	flagExtSecurity = 0x00080000
	flagTargetInfo  = 0x00800000
	flagVersion     = 0x02000000
	flag128         = 0x20000000
	flag56          = 0x80000000
)

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// ntlmChallenge builds a CHALLENGE message for the NetBIOS domain target.
func ntlmChallenge(serverChallenge [8]byte, target string) []byte {
	name := utf16le(target)
	var info []byte
	av := func(id uint16, v []byte) {
		info = binary.LittleEndian.AppendUint16(info, id)
		info = binary.LittleEndian.AppendUint16(info, uint16(len(v)))
		info = append(info, v...)
	}
	av(2, name)                          // MsvAvNbDomainName
	av(1, utf16le("PROXY"))              // MsvAvNbComputerName
	av(4, utf16le("corp.example"))       // MsvAvDnsDomainName
	av(3, utf16le("proxy.corp.example")) // MsvAvDnsComputerName
	av(0, nil)                           // MsvAvEOL
	const head = 56
	b := make([]byte, head, head+len(name)+len(info))
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 2)
	binary.LittleEndian.PutUint16(b[12:], uint16(len(name)))
	binary.LittleEndian.PutUint16(b[14:], uint16(len(name)))
	binary.LittleEndian.PutUint32(b[16:], head)
	binary.LittleEndian.PutUint32(b[20:], flagUnicode|flagRequestTgt|flagNTLM|flagAlwaysSign|flagTargetDom|
		flagExtSecurity|flagTargetInfo|flagVersion|flag128|flag56)
	copy(b[24:], serverChallenge[:])
	binary.LittleEndian.PutUint16(b[40:], uint16(len(info)))
	binary.LittleEndian.PutUint16(b[42:], uint16(len(info)))
	binary.LittleEndian.PutUint32(b[44:], uint32(head+len(name)))
	copy(b[48:], []byte{10, 0, 0x63, 0x45, 0, 0, 0, 15}) // version 10.0.17763
	b = append(b, name...)
	return append(b, info...)
}

var errNTLMRejected = errors.New("ntlm: wrong password or unknown user")

// verifyNTLMv2 checks an AUTHENTICATE message answering serverChallenge and
// returns "DOMAIN\user" when its NTLMv2 response proves the password that
// passwords holds for the user (keyed by lower-case user name).
func verifyNTLMv2(msg []byte, serverChallenge [8]byte, passwords map[string]string) (string, error) {
	if len(msg) < 64 || !bytes.HasPrefix(msg, []byte("NTLMSSP\x00")) || binary.LittleEndian.Uint32(msg[8:]) != 3 {
		return "", errors.New("ntlm: not an AUTHENTICATE message")
	}
	fieldAt := func(off int) ([]byte, error) {
		n := int(binary.LittleEndian.Uint16(msg[off:]))
		start := int(binary.LittleEndian.Uint32(msg[off+4:]))
		if start+n > len(msg) {
			return nil, fmt.Errorf("ntlm: field at %d out of range", off)
		}
		return msg[start : start+n], nil
	}
	if binary.LittleEndian.Uint32(msg[60:])&flagUnicode == 0 {
		return "", errors.New("ntlm: OEM strings not supported by the test verifier")
	}
	str := func(off int) (string, error) {
		b, err := fieldAt(off)
		if err != nil {
			return "", err
		}
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u)), nil
	}
	nt, err := fieldAt(20)
	if err != nil {
		return "", err
	}
	domain, err := str(28)
	if err != nil {
		return "", err
	}
	user, err := str(36)
	if err != nil {
		return "", err
	}
	if len(nt) <= 24 {
		return "", errors.New("ntlm: NTLMv1 response; only NTLMv2 is accepted")
	}
	password, ok := passwords[strings.ToLower(user)]
	if !ok {
		return "", errNTLMRejected
	}
	h := md4.New()
	h.Write(utf16le(password))
	mac := hmac.New(md5.New, h.Sum(nil))
	mac.Write(utf16le(strings.ToUpper(user) + domain))
	key := mac.Sum(nil)
	mac = hmac.New(md5.New, key)
	mac.Write(serverChallenge[:])
	mac.Write(nt[16:])
	if !hmac.Equal(mac.Sum(nil), nt[:16]) {
		return "", errNTLMRejected
	}
	if domain != "" {
		return domain + `\` + user, nil
	}
	return user, nil
}

// authCapture is a loopback "proxy" that records every Proxy-Authorization
// a client sends and answers like an authenticating proxy: NTLM with a
// real challenge and NTLMv2 verification, Negotiate by accepting whatever
// token arrives (the test reads it; a KDC-backed check is Squid's job).
type authCapture struct {
	ln        net.Listener
	offer     []string // Proxy-Authenticate values of the first 407
	passwords map[string]string
	challenge [8]byte

	mu       sync.Mutex
	seen     []string // Proxy-Authorization values in arrival order
	verified []string // users whose NTLMv2 response checked out
}

func newAuthCapture(t *testing.T, offer ...string) *authCapture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &authCapture{ln: ln, offer: offer, passwords: map[string]string{"alice": "alice-Pa55"},
		challenge: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	return c
}

func (c *authCapture) addr() string { return c.ln.Addr().String() }

func (c *authCapture) values() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

func (c *authCapture) users() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.verified...)
}

func (c *authCapture) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_ = req.Body.Close()
		v := req.Header.Get("Proxy-Authorization")
		c.mu.Lock()
		if v != "" {
			c.seen = append(c.seen, v)
		}
		c.mu.Unlock()
		status, auth := 407, c.offer
		switch cred := Inspect(v); {
		case v == "":
		case cred.NTLM == 1:
			auth = []string{cred.Scheme.wire() + " " + base64.StdEncoding.EncodeToString(ntlmChallenge(c.challenge, "CORP"))}
		case cred.NTLM == 3:
			tok, _ := decodeBase64(strings.TrimSpace(v[strings.IndexByte(v, ' ')+1:]))
			if cred.Scheme == SchemeNegotiate && !bytes.HasPrefix(tok, ntlmSignature) {
				tok = ntlmFromSPNEGO(tok)
			}
			if user, err := verifyNTLMv2(tok, c.challenge, c.passwords); err == nil {
				c.mu.Lock()
				c.verified = append(c.verified, user)
				c.mu.Unlock()
				status, auth = 200, nil
			}
		case cred.Scheme == SchemeBasic:
			raw, _ := decodeBase64(strings.TrimSpace(v[len("Basic "):]))
			if u, p, _ := strings.Cut(string(raw), ":"); c.passwords[u] == p {
				status, auth = 200, nil
			}
		case cred.Kerberos:
			status, auth = 200, nil
		}
		fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		for _, a := range auth {
			fmt.Fprintf(conn, "Proxy-Authenticate: %s\r\n", a)
		}
		fmt.Fprintf(conn, "Content-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
	}
}

// ntlmFromSPNEGO digs the NTLMSSP message out of a SPNEGO token the way
// Inspect does, for the capture server.
func ntlmFromSPNEGO(b []byte) []byte {
	for i := 0; i+8 <= len(b); i++ {
		if bytes.Equal(b[i:i+8], ntlmSignature) {
			return b[i:]
		}
	}
	return nil
}
