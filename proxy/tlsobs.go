package proxy

import (
	"crypto/x509"
	"strconv"
	"sync"
)

// TLS record content types (RFC 8446 §5.1).
const (
	recChangeCipherSpec = 20
	recAlert            = 21
	recHandshake        = 22
	recApplicationData  = 23
)

// Bounds on how much of a tunnel is looked at before getting out of the way.
// A handshake that has not shown its shape by then is left alone and not
// judged.
const (
	observeMaxBytes   = 64 << 10
	observeMaxRecords = 64
	maxHelloBytes     = 16 << 10
	// encryptedAlertMax is the largest TLS 1.3 record that can carry only an
	// alert: 2 bytes of alert, 1 of inner content type, a 16-byte AEAD tag,
	// and a little room for padding. A client Finished is at least 53 bytes.
	encryptedAlertMax = 24
)

// tlsObserver follows one direction of a tunnel record by record, without
// decrypting anything, until it has learnt what it can: the SNI from the
// ClientHello, the negotiated version from the ServerHello, plaintext alerts,
// and whether the client went on to send its Finished. It is fed whatever
// chunks the copy loop reads, so it keeps its own framing state.
type tlsObserver struct {
	fromClient bool
	done       bool

	hdr     [5]byte
	hdrN    int
	recType byte
	remain  int
	records int
	seen    int

	hs          []byte // the first handshake message, reassembled
	helloParsed bool
	// Server side of TLS 1.2 and earlier: the handshake goes on in clear
	// after the ServerHello, and its Certificate message carries the leaf
	// the client is shown (issue 13: a TLS-inspecting device's issuer).
	wantCert bool
	leaf     []byte // the leaf certificate's DER, copied
	alertBuf [2]byte
	alertN   int

	// Facts, read once both directions have ended.
	notTLS         bool
	sni            string
	version        uint16
	alert          int // -1: none
	encryptedAlert bool
	sawCCS         bool
	smallAppData   bool
	handshakeDone  bool // client side: it sent its Finished (or application data)
}

func (o *tlsObserver) init(fromClient bool) {
	o.fromClient = fromClient
	o.alert = -1
}

// feed consumes bytes of this direction in order.
func (o *tlsObserver) feed(p []byte) {
	if o.seen == 0 && len(p) > 0 && p[0] != recHandshake && p[0] != recAlert {
		// Decided on the first byte: a short plaintext exchange never fills
		// a record header.
		o.notTLS, o.done = true, true
		return
	}
	for len(p) > 0 && !o.done {
		if o.hdrN < 5 {
			n := copy(o.hdr[o.hdrN:], p)
			o.hdrN += n
			p = p[n:]
			o.seen += n
			if o.hdrN == 5 {
				o.startRecord()
			}
			continue
		}
		n := len(p)
		if n > o.remain {
			n = o.remain
		}
		o.payload(p[:n])
		p = p[n:]
		o.seen += n
		o.remain -= n
		if o.remain == 0 {
			o.endRecord()
		}
	}
	if o.seen > observeMaxBytes || o.records > observeMaxRecords {
		o.done = true
	}
}

func (o *tlsObserver) startRecord() {
	t := o.hdr[0]
	length := int(o.hdr[3])<<8 | int(o.hdr[4])
	if t < recChangeCipherSpec || t > recApplicationData || o.hdr[1] != 3 || length > 18432 {
		// Not TLS framing (or lost sync): stop looking.
		if o.records == 0 {
			o.notTLS = true
		}
		o.done = true
		return
	}
	if o.records == 0 && t != recHandshake && t != recAlert {
		o.notTLS = true
		o.done = true
		return
	}
	o.records++
	o.recType, o.remain = t, length
	switch t {
	case recApplicationData:
		if o.fromClient {
			// The first client record of type 23 after the server's flight is
			// its Finished (TLS 1.3) or application data (TLS 1.2): either way
			// the handshake completed, unless it is only big enough for an
			// alert and nothing follows it.
			if length > encryptedAlertMax || o.smallAppData {
				o.handshakeDone = true
				o.done = true
				return
			}
			o.smallAppData = true
		} else if o.version == 0 {
			o.done = true
			return
		}
	case recAlert:
		if length != 2 {
			o.encryptedAlert = true
			o.done = true
			return
		}
		o.alertN = 0
	case recChangeCipherSpec:
		o.sawCCS = true
	}
	if length == 0 {
		o.endRecord()
	}
}

func (o *tlsObserver) payload(p []byte) {
	switch o.recType {
	case recHandshake:
		if o.wantCert {
			if len(o.hs)+len(p) > maxCertBytes {
				o.wantCert, o.hs = false, nil
				return
			}
			o.hs = append(o.hs, p...)
			o.tryCertificate()
			return
		}
		if o.helloParsed || len(o.hs)+len(p) > maxHelloBytes {
			return
		}
		o.hs = append(o.hs, p...)
		o.tryHello()
	case recAlert:
		o.alertN += copy(o.alertBuf[o.alertN:], p)
	}
}

func (o *tlsObserver) endRecord() {
	o.hdrN = 0
	switch o.recType {
	case recAlert:
		if o.alertN == 2 {
			o.alert = int(o.alertBuf[1])
		}
		o.done = true
	case recChangeCipherSpec:
		// In TLS 1.2 the server's CCS means its side of the handshake is
		// over; everything after is encrypted and tells us nothing.
		if !o.fromClient && o.version != 0 && o.version < 0x0304 {
			o.done = true
		}
	}
}

// tryHello parses the first handshake message once it is complete.
func (o *tlsObserver) tryHello() {
	if len(o.hs) < 4 {
		return
	}
	msgLen := int(o.hs[1])<<16 | int(o.hs[2])<<8 | int(o.hs[3])
	if len(o.hs) < 4+msgLen {
		return
	}
	o.helloParsed = true
	body := o.hs[4 : 4+msgLen]
	switch {
	case o.fromClient && o.hs[0] == 1:
		o.sni = parseClientHelloSNI(body)
	case !o.fromClient && o.hs[0] == 2:
		o.version = parseServerHelloVersion(body)
		if o.version >= 0x0304 {
			// Everything after a TLS 1.3 ServerHello is encrypted.
			o.done = true
		} else if o.version != 0 {
			// The Certificate message follows, often in the same record.
			o.wantCert = true
			o.hs = append([]byte(nil), o.hs[4+msgLen:]...)
			o.tryCertificate()
			return
		}
	}
	o.hs = nil
}

// maxCertBytes bounds what is buffered to find the leaf certificate.
const maxCertBytes = 32 << 10

// tryCertificate walks the server's handshake messages after the
// ServerHello until the Certificate message's first entry (the leaf) is
// complete. Only that prefix is needed, not the whole chain.
func (o *tlsObserver) tryCertificate() {
	for o.wantCert && len(o.hs) >= 4 {
		msgLen := int(o.hs[1])<<16 | int(o.hs[2])<<8 | int(o.hs[3])
		if o.hs[0] != 11 {
			if len(o.hs) < 4+msgLen {
				return
			}
			o.hs = o.hs[4+msgLen:] // not the Certificate message: skip it
			continue
		}
		// certificate_list<3>, then the first certificate<3>.
		if len(o.hs) < 10 {
			return
		}
		certLen := int(o.hs[7])<<16 | int(o.hs[8])<<8 | int(o.hs[9])
		if certLen == 0 || certLen > maxCertBytes {
			o.wantCert, o.hs = false, nil
			return
		}
		if len(o.hs) < 10+certLen {
			return
		}
		o.leaf = append([]byte(nil), o.hs[10:10+certLen]...)
		o.wantCert, o.hs = false, nil
	}
}

// cursor is a bounds-checked reader over a handshake body.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) skip(n int) {
	if c.bad || n > len(c.b) {
		c.bad = true
		return
	}
	c.b = c.b[n:]
}

func (c *cursor) u8() int {
	if c.bad || len(c.b) < 1 {
		c.bad = true
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v
}

func (c *cursor) u16() int {
	if c.bad || len(c.b) < 2 {
		c.bad = true
		return 0
	}
	v := int(c.b[0])<<8 | int(c.b[1])
	c.b = c.b[2:]
	return v
}

func (c *cursor) bytes(n int) []byte {
	if c.bad || n > len(c.b) {
		c.bad = true
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

// extensions calls fn for each extension until fn returns false.
func (c *cursor) extensions(fn func(typ int, data []byte) bool) {
	if len(c.b) == 0 {
		return
	}
	ext := cursor{b: c.bytes(c.u16())}
	for !ext.bad && len(ext.b) >= 4 {
		typ := ext.u16()
		data := ext.bytes(ext.u16())
		if ext.bad || !fn(typ, data) {
			return
		}
	}
}

// parseClientHelloSNI returns the host_name of the server_name extension
// (RFC 6066 §3), or "" if there is none.
func parseClientHelloSNI(body []byte) string {
	c := cursor{b: body}
	c.skip(2 + 32)  // legacy_version, random
	c.skip(c.u8())  // legacy_session_id
	c.skip(c.u16()) // cipher_suites
	c.skip(c.u8())  // legacy_compression_methods
	if c.bad {
		return ""
	}
	var sni string
	c.extensions(func(typ int, data []byte) bool {
		if typ != 0 {
			return true
		}
		list := cursor{b: data}
		names := cursor{b: list.bytes(list.u16())}
		for !names.bad && len(names.b) > 0 {
			kind := names.u8()
			name := names.bytes(names.u16())
			if !names.bad && kind == 0 {
				sni = string(name)
				return false
			}
		}
		return false
	})
	return sni
}

// parseServerHelloVersion returns the negotiated version: supported_versions
// (RFC 8446 §4.2.1) when present, else legacy_version.
func parseServerHelloVersion(body []byte) uint16 {
	c := cursor{b: body}
	legacy := c.u16()
	c.skip(32)
	c.skip(c.u8()) // legacy_session_id_echo
	c.skip(2 + 1)  // cipher_suite, legacy_compression_method
	if c.bad {
		return uint16(legacy)
	}
	version := legacy
	c.extensions(func(typ int, data []byte) bool {
		if typ == 43 && len(data) == 2 {
			version = int(data[0])<<8 | int(data[1])
			return false
		}
		return true
	})
	return uint16(version)
}

func tlsVersionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case 0x0300:
		return "ssl3"
	case 0x0301:
		return "1.0"
	case 0x0302:
		return "1.1"
	case 0x0303:
		return "1.2"
	case 0x0304:
		return "1.3"
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

// alertNames are the TLS alert descriptions (RFC 8446 §6, RFC 5246 §7.2).
var alertNames = map[int]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
	22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure",
	41: "no_certificate", 42: "bad_certificate", 43: "unsupported_certificate",
	44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
	47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
	51: "decrypt_error", 60: "export_restriction", 70: "protocol_version",
	71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
	90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
	110: "unsupported_extension", 111: "certificate_unobtainable", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
	115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
	121: "ech_required",
}

func alertName(d int) string {
	if n, ok := alertNames[d]; ok {
		return n
	}
	return "alert_" + strconv.Itoa(d)
}

// maxCertName bounds an issuer or subject in the event.
const maxCertName = 256

// certCache keeps the names of the leaf certificates seen lately. A PC's
// TLS 1.2 tunnels go to a few hosts, each showing the same certificate for
// months, and parsing one costs more than the rest of the tunnel's
// observation (BenchmarkCertNames): a tunnel that shows a known certificate
// pays a map lookup, keyed by the DER itself, which allocates nothing.
type certCache struct {
	mu sync.Mutex
	m  map[string][2]string
}

// certCacheMax bounds the cache; when it is full it starts again, which
// costs a parse per certificate once.
const certCacheMax = 512

func (cc *certCache) names(der []byte) (issuer, subject string) {
	cc.mu.Lock()
	n, ok := cc.m[string(der)]
	cc.mu.Unlock()
	if ok {
		return n[0], n[1]
	}
	issuer, subject = certNames(der)
	cc.mu.Lock()
	if cc.m == nil || len(cc.m) >= certCacheMax {
		cc.m = make(map[string][2]string)
	}
	cc.m[string(der)] = [2]string{issuer, subject}
	cc.mu.Unlock()
	return issuer, subject
}

// certNames reads the issuer and subject of a leaf certificate seen in
// clear (RFC 2253 form, cut and made printable). Parsed once per tunnel,
// at its end, and only when a TLS 1.2 server showed one.
func certNames(der []byte) (issuer, subject string) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "", ""
	}
	return printable([]byte(c.Issuer.String()), maxCertName), printable([]byte(c.Subject.String()), maxCertName)
}
