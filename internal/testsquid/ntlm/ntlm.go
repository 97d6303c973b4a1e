// Package ntlm builds and checks the NTLM messages of MS-NLMP (NEGOTIATE,
// CHALLENGE, AUTHENTICATE) with NTLMv2 responses, for m365tap's test
// fixtures: a Squid authentication helper that really verifies a password,
// and Go clients that really answer a challenge.
//
// It exists because Squid's own ntlm_fake_auth accepts any password, so a
// test built on it cannot tell a relayed handshake that proved the user's
// password from one that did not. Only NTLMv2 is accepted: NTLMv1 and LM
// responses are refused, as current Windows policy refuses them.
package ntlm

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/md4" //nolint:staticcheck // NTOWF is MD4 by definition (MS-NLMP 3.3.2)
)

// Signature starts every NTLM message.
var Signature = []byte("NTLMSSP\x00")

// Message types (MS-NLMP 2.2.1).
const (
	TypeNegotiate    = 1
	TypeChallenge    = 2
	TypeAuthenticate = 3
)

// Negotiate flags used here (MS-NLMP 2.2.2.5).
const (
	FlagUnicode          = 0x00000001
	FlagOEM              = 0x00000002
	FlagRequestTarget    = 0x00000004
	FlagNTLM             = 0x00000200
	FlagAlwaysSign       = 0x00008000
	FlagTargetTypeDomain = 0x00010000
	FlagExtendedSecurity = 0x00080000
	FlagTargetInfo       = 0x00800000
	Flag128              = 0x20000000
	Flag56               = 0x80000000
)

// AV pair ids (MS-NLMP 2.2.2.1).
const (
	avEOL             = 0
	avNbComputerName  = 1
	avNbDomainName    = 2
	avDNSComputerName = 3
	avDNSDomainName   = 4
	avTimestamp       = 7
)

// MessageType reports the type of an NTLM message, or 0 if b is not one.
func MessageType(b []byte) int {
	if len(b) < 12 || !bytes.Equal(b[:8], Signature) {
		return 0
	}
	return int(binary.LittleEndian.Uint32(b[8:12]))
}

// Negotiate returns a NEGOTIATE message asking for Unicode, NTLM with
// extended session security, and the target information NTLMv2 needs.
func Negotiate() []byte {
	b := make([]byte, 32)
	copy(b, Signature)
	binary.LittleEndian.PutUint32(b[8:], TypeNegotiate)
	binary.LittleEndian.PutUint32(b[12:], FlagUnicode|FlagOEM|FlagRequestTarget|FlagNTLM|FlagAlwaysSign|FlagExtendedSecurity|Flag128|Flag56)
	return b
}

// Challenge is the content of a CHALLENGE message.
type Challenge struct {
	Flags      uint32
	Server     [8]byte
	TargetName string
	TargetInfo []byte
}

// NewChallenge returns a challenge with a random server challenge for the
// NetBIOS domain and computer names given.
func NewChallenge(domain, computer string) (*Challenge, error) {
	c := &Challenge{
		Flags:      FlagUnicode | FlagRequestTarget | FlagNTLM | FlagAlwaysSign | FlagTargetTypeDomain | FlagExtendedSecurity | FlagTargetInfo | Flag128 | Flag56,
		TargetName: domain,
	}
	if _, err := rand.Read(c.Server[:]); err != nil {
		return nil, err
	}
	var info bytes.Buffer
	putAV := func(id uint16, v []byte) {
		_ = binary.Write(&info, binary.LittleEndian, id)
		_ = binary.Write(&info, binary.LittleEndian, uint16(len(v)))
		info.Write(v)
	}
	putAV(avNbDomainName, utf16le(domain))
	putAV(avNbComputerName, utf16le(computer))
	putAV(avDNSDomainName, utf16le(strings.ToLower(domain)+".test"))
	putAV(avDNSComputerName, utf16le(strings.ToLower(computer)+"."+strings.ToLower(domain)+".test"))
	ts := make([]byte, 8)
	binary.LittleEndian.PutUint64(ts, filetime(time.Now()))
	putAV(avTimestamp, ts)
	putAV(avEOL, nil)
	c.TargetInfo = info.Bytes()
	return c, nil
}

// Marshal encodes the CHALLENGE message.
func (c *Challenge) Marshal() []byte {
	const head = 56
	name := utf16le(c.TargetName)
	b := make([]byte, head, head+len(name)+len(c.TargetInfo))
	copy(b, Signature)
	binary.LittleEndian.PutUint32(b[8:], TypeChallenge)
	putField(b[12:], len(name), head)
	binary.LittleEndian.PutUint32(b[20:], c.Flags)
	copy(b[24:32], c.Server[:])
	putField(b[40:], len(c.TargetInfo), head+len(name))
	b = append(b, name...)
	b = append(b, c.TargetInfo...)
	return b
}

// ParseChallenge decodes a CHALLENGE message.
func ParseChallenge(b []byte) (*Challenge, error) {
	if MessageType(b) != TypeChallenge || len(b) < 48 {
		return nil, errors.New("ntlm: not a CHALLENGE message")
	}
	c := &Challenge{Flags: binary.LittleEndian.Uint32(b[20:])}
	copy(c.Server[:], b[24:32])
	name, err := field(b, 12)
	if err != nil {
		return nil, fmt.Errorf("ntlm: CHALLENGE target name: %w", err)
	}
	c.TargetName = decodeString(name, c.Flags)
	if c.TargetInfo, err = field(b, 40); err != nil {
		return nil, fmt.Errorf("ntlm: CHALLENGE target info: %w", err)
	}
	return c, nil
}

// Authenticate is the content of an AUTHENTICATE message.
type Authenticate struct {
	Flags       uint32
	LM, NT      []byte
	Domain      string
	User        string
	Workstation string
}

// Respond answers the challenge with an NTLMv2 AUTHENTICATE message for
// the user, domain and password given.
func Respond(ch *Challenge, user, domain, password string) ([]byte, error) {
	var client [8]byte
	if _, err := rand.Read(client[:]); err != nil {
		return nil, err
	}
	ts := filetime(time.Now())
	if t, ok := avTimestampOf(ch.TargetInfo); ok {
		ts = t
	}
	key := NTOWFv2(password, user, domain)
	nt := NTv2Response(key, ch.Server, client, ts, ch.TargetInfo)
	m := hmac.New(md5.New, key)
	m.Write(ch.Server[:])
	m.Write(client[:])
	lm := append(m.Sum(nil), client[:]...)
	a := &Authenticate{
		Flags:       FlagUnicode | FlagNTLM | FlagAlwaysSign | FlagExtendedSecurity | FlagTargetInfo | Flag128 | Flag56,
		LM:          lm,
		NT:          nt,
		Domain:      domain,
		User:        user,
		Workstation: "CLIENT",
	}
	return a.Marshal(), nil
}

// Marshal encodes the AUTHENTICATE message, with Unicode strings.
func (a *Authenticate) Marshal() []byte {
	const head = 64
	parts := [][]byte{a.LM, a.NT, utf16le(a.Domain), utf16le(a.User), utf16le(a.Workstation), nil}
	b := make([]byte, head)
	copy(b, Signature)
	binary.LittleEndian.PutUint32(b[8:], TypeAuthenticate)
	off := head
	for i, p := range parts {
		putField(b[12+8*i:], len(p), off)
		off += len(p)
	}
	binary.LittleEndian.PutUint32(b[60:], a.Flags|FlagUnicode)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// ParseAuthenticate decodes an AUTHENTICATE message.
func ParseAuthenticate(b []byte) (*Authenticate, error) {
	if MessageType(b) != TypeAuthenticate || len(b) < 64 {
		return nil, errors.New("ntlm: not an AUTHENTICATE message")
	}
	a := &Authenticate{Flags: binary.LittleEndian.Uint32(b[60:])}
	var err error
	var dom, user, ws []byte
	if a.LM, err = field(b, 12); err == nil {
		if a.NT, err = field(b, 20); err == nil {
			if dom, err = field(b, 28); err == nil {
				if user, err = field(b, 36); err == nil {
					ws, err = field(b, 44)
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ntlm: AUTHENTICATE: %w", err)
	}
	a.Domain = decodeString(dom, a.Flags)
	a.User = decodeString(user, a.Flags)
	a.Workstation = decodeString(ws, a.Flags)
	return a, nil
}

// ErrWrongPassword is returned by Verify when the response was not made
// with the password given.
var ErrWrongPassword = errors.New("ntlm: the NTLMv2 response does not match the password")

// Verify checks that a's NTLMv2 response answers the server challenge with
// password. NTLMv1 and anonymous responses are refused.
func (a *Authenticate) Verify(server [8]byte, password string) error {
	// An NTLMv2 response is the 16-byte NTProofStr followed by a blob of at
	// least 28 bytes; 24 bytes is NTLMv1, 0 is anonymous.
	if len(a.NT) < 16+28 {
		return fmt.Errorf("ntlm: NT response of %d bytes is not NTLMv2", len(a.NT))
	}
	key := NTOWFv2(password, a.User, a.Domain)
	m := hmac.New(md5.New, key)
	m.Write(server[:])
	m.Write(a.NT[16:])
	if !hmac.Equal(m.Sum(nil), a.NT[:16]) {
		return ErrWrongPassword
	}
	return nil
}

// NTOWFv2 is the NTLMv2 response key (MS-NLMP 3.3.2): HMAC-MD5 keyed with
// MD4(UTF-16LE(password)) over UTF-16LE(upper(user) + domain).
func NTOWFv2(password, user, domain string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	m := hmac.New(md5.New, h.Sum(nil))
	m.Write(utf16le(strings.ToUpper(user) + domain))
	return m.Sum(nil)
}

// NTv2Response is NTProofStr followed by the client blob (MS-NLMP 3.3.2).
func NTv2Response(key []byte, server, client [8]byte, timestamp uint64, targetInfo []byte) []byte {
	blob := make([]byte, 0, 28+len(targetInfo)+4)
	blob = append(blob, 1, 1, 0, 0, 0, 0, 0, 0)
	blob = binary.LittleEndian.AppendUint64(blob, timestamp)
	blob = append(blob, client[:]...)
	blob = append(blob, 0, 0, 0, 0)
	blob = append(blob, targetInfo...)
	blob = append(blob, 0, 0, 0, 0)
	m := hmac.New(md5.New, key)
	m.Write(server[:])
	m.Write(blob)
	return append(m.Sum(nil), blob...)
}

func avTimestampOf(info []byte) (uint64, bool) {
	for len(info) >= 4 {
		id := binary.LittleEndian.Uint16(info)
		n := int(binary.LittleEndian.Uint16(info[2:]))
		if id == avEOL || len(info) < 4+n {
			break
		}
		if id == avTimestamp && n == 8 {
			return binary.LittleEndian.Uint64(info[4:]), true
		}
		info = info[4+n:]
	}
	return 0, false
}

// filetime is t in 100 ns units since 1601-01-01, as Windows counts.
func filetime(t time.Time) uint64 {
	return uint64(t.UnixNano()/100) + 116444736000000000
}

func putField(b []byte, n, off int) {
	binary.LittleEndian.PutUint16(b, uint16(n))
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	binary.LittleEndian.PutUint32(b[4:], uint32(off))
}

func field(b []byte, at int) ([]byte, error) {
	n := int(binary.LittleEndian.Uint16(b[at:]))
	off := int(binary.LittleEndian.Uint32(b[at+4:]))
	if off < 0 || off > len(b) || n > len(b)-off {
		return nil, fmt.Errorf("field at %d (offset %d, length %d) outside the %d-byte message", at, off, n, len(b))
	}
	return b[off : off+n], nil
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return b
}

func decodeString(b []byte, flags uint32) string {
	if flags&FlagUnicode == 0 {
		return string(b)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
