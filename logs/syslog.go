package logs

import (
	"strconv"

	"go.uber.org/zap/zapcore"
)

// RFC 5424 framing. Each record becomes one syslog message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
//
// PRI is facility×8 + severity (from the record's level); TIMESTAMP is UTC
// with microseconds; MSGID is the record kind ("exchange", "start",
// "events_dropped", ...); STRUCTURED-DATA is always the NILVALUE "-": the
// record travels whole in MSG, in the sink's format (a JSON or ECS object,
// or a CEF line), so that a collector parses it the way it parses the file.
// No SD-ID is defined: a private one needs an IANA enterprise number, and
// 32473 is reserved for documentation (RFC 5612). MSG has no BOM: a BOM in
// front of "CEF:" would hide the CEF header from collectors that look for
// it at the start of MSG.
//
// Over TCP and TLS each message is sent with octet counting (RFC 6587
// section 3.4.1, required by RFC 5425): its length in decimal, a space, the
// message. Over UDP one message is one datagram (RFC 5426).

// syslogHeader holds the header fields that do not change per record,
// already reduced to what RFC 5424 allows.
type syslogHeader struct {
	facility int
	hostname string
	appName  string
	procID   string
}

func newSyslogHeader(facility int, hostname, appName string, pid int) syslogHeader {
	return syslogHeader{
		facility: facility,
		hostname: string(appendHeaderField(nil, hostname, 255)),
		appName:  string(appendHeaderField(nil, appName, 48)),
		procID:   string(appendHeaderField(nil, strconv.Itoa(pid), 128)),
	}
}

// syslogSeverity maps a level onto RFC 5424 severities: debug 7, info 6,
// warn 4 (warning), error 3, and 2 (critical) above.
func syslogSeverity(l zapcore.Level) int {
	switch {
	case l <= zapcore.DebugLevel:
		return 7
	case l == zapcore.InfoLevel:
		return 6
	case l == zapcore.WarnLevel:
		return 4
	case l == zapcore.ErrorLevel:
		return 3
	}
	return 2
}

// appendFrame appends one RFC 5424 message; payload is an encoded record,
// whose trailing line ending is dropped.
func (h *syslogHeader) appendFrame(dst []byte, ent zapcore.Entry, payload []byte) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(h.facility*8+syslogSeverity(ent.Level)), 10)
	dst = append(dst, ">1 "...)
	dst = appendTimestamp(dst, ent.Time)
	dst = append(dst, ' ')
	dst = append(dst, h.hostname...)
	dst = append(dst, ' ')
	dst = append(dst, h.appName...)
	dst = append(dst, ' ')
	dst = append(dst, h.procID...)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, ent.Message, 32)
	dst = append(dst, " -"...)
	for len(payload) > 0 && (payload[len(payload)-1] == '\n' || payload[len(payload)-1] == '\r') {
		payload = payload[:len(payload)-1]
	}
	if len(payload) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, payload...)
	}
	return dst
}

// appendHeaderField writes a header field as RFC 5424 section 6 allows:
// printable US-ASCII (33..126) only, at most max characters, the NILVALUE
// "-" when nothing is left. Other bytes become '_'.
func appendHeaderField(dst []byte, s string, max int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendOctetCounted frames one message for a stream (RFC 6587 3.4.1).
func appendOctetCounted(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}
