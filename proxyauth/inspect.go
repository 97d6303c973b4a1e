package proxyauth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Credential is what a client's Proxy-Authorization value says about
// itself, read without verifying anything. The zero value means no
// credential (or nothing readable in it).
type Credential struct {
	// Scheme is the value's scheme; SchemeNone for an empty value.
	Scheme Scheme
	// NTLM is the NTLM message type (1 negotiate, 2 challenge, 3
	// authenticate) when the token is an NTLMSSP message: bare under the
	// NTLM scheme, or under Negotiate either raw (as Windows sends it when
	// it falls back from Kerberos) or as the mechToken of a SPNEGO
	// NegTokenInit or NegTokenResp. 0 otherwise.
	NTLM uint8
	// Kerberos is true when the token is a Kerberos AP-REQ: bare, in its
	// GSS-API framing (OID 1.2.840.113554.1.2.2, or Microsoft's
	// 1.2.840.48018.1.2.2), or inside SPNEGO.
	Kerberos bool
	// SPN is the service name of the AP-REQ's ticket, its sname components
	// joined by "/": "HTTP/proxy.corp.example". It travels in clear; it
	// names the proxy the client thinks it talks to. Empty when not Kerberos.
	SPN string
	// Realm is the ticket's realm, as clear as the SPN.
	Realm string
	// User is the user name of a Basic credential, the username parameter
	// of a Digest one, or "DOMAIN\user" (or "user" without a domain) of an
	// NTLM authenticate message. It is personal data: the caller decides
	// whether to log it. Cut to MaxFieldLen bytes.
	User string
}

// Limits that keep Inspect's work bounded on hostile input.
const (
	// MaxTokenLen is the longest credential (base64 text) Inspect decodes.
	// Windows caps a Kerberos token at 48,000 bytes (MaxTokenSize), 64,000
	// in base64; anything longer is only given its scheme.
	MaxTokenLen = 65536
	// MaxFieldLen bounds SPN, Realm and User, so an event stays small
	// whatever a client sends.
	MaxFieldLen = 256
	// maxNesting bounds how deep mech tokens may wrap each other
	// (GSS framing, SPNEGO, a mechToken, ...).
	maxNesting = 4
)

// Inspect reads a client's Proxy-Authorization value. It never panics and
// its work is linear in the value's length (values beyond MaxTokenLen are
// not decoded); anything it cannot read is left zero in the result.
func Inspect(value string) Credential {
	c := Credential{Scheme: SchemeOf(value)}
	if c.Scheme == SchemeNone || c.Scheme == SchemeOther {
		return c
	}
	rest := trimOWS(value)
	i := 0
	for i < len(rest) && isTchar(rest[i]) {
		i++
	}
	rest = strings.TrimRight(trimOWS(rest[i:]), " \t")
	if rest == "" || len(rest) > MaxTokenLen {
		return c
	}
	if c.Scheme == SchemeDigest {
		c.User = clip(digestUser(rest))
		return c
	}
	raw, ok := decodeBase64(rest)
	if !ok {
		return c
	}
	switch c.Scheme {
	case SchemeBasic:
		user, _, _ := bytes.Cut(raw, []byte(":"))
		if len(user) > MaxFieldLen {
			user = user[:MaxFieldLen+utf8.UTFMax]
		}
		c.User = clip(string(user))
	case SchemeNTLM:
		c.inspectNTLM(raw)
	case SchemeNegotiate:
		c.inspectMech(raw, 0)
	}
	return c
}

// decodeBase64 accepts padded and unpadded standard base64: clients differ.
func decodeBase64(s string) ([]byte, bool) {
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}

var ntlmSignature = []byte("NTLMSSP\x00")

// OIDs in DER content form (without tag and length).
var (
	oidSPNEGO   = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}                         // 1.3.6.1.5.5.2
	oidKRB5     = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}       // 1.2.840.113554.1.2.2
	oidMSKRB5   = []byte{0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02}       // 1.2.840.48018.1.2.2
	oidNTLMSSP  = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a} // 1.3.6.1.4.1.311.2.2.10
	krb5APReqID = []byte{0x01, 0x00}                                                 // TOK_ID of an AP-REQ (RFC 4121 §4.1)
)

// inspectMech reads a token under Negotiate, or a mechToken inside SPNEGO.
func (c *Credential) inspectMech(b []byte, depth int) {
	if depth > maxNesting || len(b) == 0 {
		return
	}
	if bytes.HasPrefix(b, ntlmSignature) {
		c.inspectNTLM(b)
		return
	}
	switch b[0] {
	case 0x60: // [APPLICATION 0] InitialContextToken (RFC 2743 §3.1)
		tag, body, _, ok := der(b)
		if !ok || tag != 0x60 {
			return
		}
		tag, oid, inner, ok := der(body)
		if !ok || tag != 0x06 {
			return
		}
		switch {
		case bytes.Equal(oid, oidSPNEGO):
			c.inspectNegotiation(inner, depth+1)
		case bytes.Equal(oid, oidKRB5), bytes.Equal(oid, oidMSKRB5):
			if bytes.HasPrefix(inner, krb5APReqID) {
				c.inspectAPReq(inner[2:])
			}
		case bytes.Equal(oid, oidNTLMSSP):
			c.inspectMech(inner, depth+1)
		}
	case 0xa0, 0xa1: // a NegotiationToken without the GSS framing
		c.inspectNegotiation(b, depth+1)
	case 0x6e: // a bare AP-REQ
		c.inspectAPReq(b)
	}
}

// inspectNegotiation reads a SPNEGO NegotiationToken (RFC 4178 §4.2):
// [0] NegTokenInit or [1] NegTokenResp, and looks into its mechToken
// ([2] of NegTokenInit) or responseToken ([2] of NegTokenResp).
func (c *Credential) inspectNegotiation(b []byte, depth int) {
	tag, body, _, ok := der(b)
	if !ok || (tag != 0xa0 && tag != 0xa1) {
		return
	}
	tag, seq, _, ok := der(body)
	if !ok || tag != 0x30 {
		return
	}
	for len(seq) > 0 {
		var field []byte
		tag, field, seq, ok = der(seq)
		if !ok {
			return
		}
		if tag != 0xa2 {
			continue
		}
		tag, tok, _, ok := der(field)
		if ok && tag == 0x04 {
			c.inspectMech(tok, depth)
		}
		return
	}
}

// inspectAPReq reads the ticket's realm and sname from a KRB_AP_REQ
// (RFC 4120 §5.5.1, §5.3):
//
//	AP-REQ ::= [APPLICATION 14] SEQUENCE { ..., ticket [3] Ticket, ... }
//	Ticket ::= [APPLICATION 1] SEQUENCE { tkt-vno [0], realm [1] Realm,
//	           sname [2] PrincipalName, enc-part [3] }
//	PrincipalName ::= SEQUENCE { name-type [0], name-string [1] SEQUENCE OF KerberosString }
func (c *Credential) inspectAPReq(b []byte) {
	tag, body, _, ok := der(b)
	if !ok || tag != 0x6e {
		return
	}
	tag, seq, _, ok := der(body)
	if !ok || tag != 0x30 {
		return
	}
	c.Kerberos = true
	ticket, ok := field(seq, 0xa3)
	if !ok {
		return
	}
	tag, tbody, _, ok := der(ticket)
	if !ok || tag != 0x61 {
		return
	}
	tag, tseq, _, ok := der(tbody)
	if !ok || tag != 0x30 {
		return
	}
	if realm, ok := field(tseq, 0xa1); ok {
		if tag, s, _, ok := der(realm); ok && tag == 0x1b {
			c.Realm = clip(string(s))
		}
	}
	sname, ok := field(tseq, 0xa2)
	if !ok {
		return
	}
	tag, pn, _, ok := der(sname)
	if !ok || tag != 0x30 {
		return
	}
	names, ok := field(pn, 0xa1)
	if !ok {
		return
	}
	tag, list, _, ok := der(names)
	if !ok || tag != 0x30 {
		return
	}
	var spn []byte
	for len(list) > 0 && len(spn) <= MaxFieldLen {
		var s []byte
		tag, s, list, ok = der(list)
		if !ok || tag != 0x1b {
			return
		}
		if len(spn) > 0 {
			spn = append(spn, '/')
		}
		spn = append(spn, s...)
	}
	c.SPN = clip(string(spn))
}

// field returns the content of the context-tagged element tag in a
// SEQUENCE's content.
func field(seq []byte, tag byte) ([]byte, bool) {
	for len(seq) > 0 {
		t, body, rest, ok := der(seq)
		if !ok {
			return nil, false
		}
		if t == tag {
			return body, true
		}
		seq = rest
	}
	return nil, false
}

// der splits one DER element off b: its tag byte, its content and what
// follows. Only what Kerberos and SPNEGO use is accepted: one-byte tags and
// definite lengths of at most four bytes.
func der(b []byte) (tag byte, content, rest []byte, ok bool) {
	if len(b) < 2 || b[0]&0x1f == 0x1f {
		return 0, nil, nil, false
	}
	tag = b[0]
	n := int(b[1])
	b = b[2:]
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < k {
			return 0, nil, nil, false
		}
		n = 0
		for _, d := range b[:k] {
			n = n<<8 | int(d)
		}
		b = b[k:]
	}
	if n < 0 || n > len(b) {
		return 0, nil, nil, false
	}
	return tag, b[:n], b[n:], true
}

// NTLM message layout (MS-NLMP §2.2.1): the signature, the message type at
// 8; in an AUTHENTICATE message the DomainNameFields at 28, UserNameFields
// at 36 (each: length, max length, offset) and NegotiateFlags at 60.
const (
	ntlmTypeOffset   = 8
	ntlmDomainFields = 28
	ntlmUserFields   = 36
	ntlmFlagsOffset  = 60
	ntlmUnicode      = 0x00000001 // NTLMSSP_NEGOTIATE_UNICODE
)

func (c *Credential) inspectNTLM(b []byte) {
	if !bytes.HasPrefix(b, ntlmSignature) || len(b) < ntlmTypeOffset+4 {
		return
	}
	t := binary.LittleEndian.Uint32(b[ntlmTypeOffset:])
	if t < 1 || t > 3 {
		return
	}
	c.NTLM = uint8(t)
	if t != 3 || len(b) < ntlmUserFields+8 {
		return
	}
	// Messages from before NTLMv2 may end before the flags; such old
	// clients sent OEM strings.
	unicode := len(b) >= ntlmFlagsOffset+4 && binary.LittleEndian.Uint32(b[ntlmFlagsOffset:])&ntlmUnicode != 0
	user, ok := ntlmString(b, ntlmUserFields, unicode)
	if !ok || user == "" {
		return
	}
	if domain, ok := ntlmString(b, ntlmDomainFields, unicode); ok && domain != "" {
		user = domain + `\` + user
	}
	c.User = clip(user)
}

// ntlmString reads the string a field descriptor at off points to.
func ntlmString(b []byte, off int, unicode bool) (string, bool) {
	n := int(binary.LittleEndian.Uint16(b[off:]))
	start := int(binary.LittleEndian.Uint32(b[off+4:]))
	if start > len(b) || n > len(b)-start {
		return "", false
	}
	s := b[start : start+n]
	if len(s) > 4*MaxFieldLen {
		s = s[:4*MaxFieldLen]
	}
	if unicode {
		u := make([]uint16, len(s)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(s[2*i:])
		}
		return string(utf16.Decode(u)), true
	}
	// OEM: the client's code page, which the tap cannot know. ASCII is
	// read as such; other bytes as Latin-1, so the name stays valid UTF-8.
	r := make([]rune, len(s))
	for i, ch := range s {
		r[i] = rune(ch)
	}
	return string(r), true
}

// digestUser returns the username parameter of Digest credentials
// (RFC 7616 §3.4), unquoted.
func digestUser(params string) string {
	i := 0
	for i < len(params) {
		for i < len(params) && (params[i] == ',' || isWS(params[i])) {
			i++
		}
		start := i
		for i < len(params) && isTchar(params[i]) {
			i++
		}
		name := params[start:i]
		j := skipWS(params, i)
		if name == "" || j >= len(params) || params[j] != '=' {
			if i == start {
				i++
			}
			continue
		}
		vstart := skipWS(params, j+1)
		i = skipParamValue(params, vstart)
		if strings.EqualFold(name, "username") {
			return unquote(params[vstart:i])
		}
	}
	return ""
}

func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// clip cuts s to MaxFieldLen bytes, dropping a rune the cut split.
func clip(s string) string {
	if len(s) <= MaxFieldLen {
		return s
	}
	s = s[:MaxFieldLen]
	for range utf8.UTFMax - 1 {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
