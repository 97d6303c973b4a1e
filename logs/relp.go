package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// RELP, the Reliable Event Logging Protocol (rsyslog's imrelp; the
// specification is doc/relp.md in rsyslog/librelp). Each syslog message is
// a "syslog" command that the receiver answers with "rsp 200" once it has
// taken the message in, so the sender forgets a message only when the
// receiver's daemon (not its kernel) has it. Commands and answers are
// frames:
//
//	TXNR SP COMMAND SP DATALEN [SP DATA] LF
//
// TXNR counts up from 1 on each connection (0 is for the server's hints,
// "serverclose"), DATALEN is the length of DATA in decimal, and answers
// come in the order of the commands. A session starts with "open", whose
// DATA offers the protocol version and the commands the client wants; the
// receiver answers with what it accepts, and the session is usable once
// that answer says commands=syslog.
//
// Why our own client: the Go module list has no maintained RELP client
// (none at all under that name), and the part of the protocol a sender
// needs is the few lines below: write frames, read answers in order. The
// rest of the delivery logic (queue, resend after a reconnect, backoff) is
// the shipper's, shared with TCP and TLS.

const (
	// relpVersion is what librelp itself offers (RELP_CURR_PROTOCOL_VERSION
	// is 0 in librelp 1.11, and imrelp answers relp_version=0).
	relpVersion = "0"
	// relpMaxTxnr: TXNR is at most nine digits and wraps to 1 after it.
	relpMaxTxnr = 999_999_999
	// relpWindow bounds the commands sent and not yet answered, as
	// librelp's window does (its default is 128); a larger one keeps a
	// loopback or LAN link busy while batches of 64 KiB go out.
	relpWindow = 1024
	// relpMaxFrame bounds an answer's DATALEN: answers are short, and a
	// receiver that announces more is not speaking RELP.
	relpMaxFrame = 64 << 10
)

var (
	errRELPRefused  = errors.New("relp: the receiver refused the session")
	errRELPNoSyslog = errors.New("relp: the receiver does not accept the syslog command (its open answer lacks commands=syslog)")
)

// relpTxnr is the wire TXNR of the n-th command of a connection (n from 1).
func relpTxnr(n uint64) uint64 { return (n-1)%relpMaxTxnr + 1 }

// appendRELP appends one command frame.
func appendRELP(dst []byte, txnr uint64, cmd string, data []byte) []byte {
	dst = strconv.AppendUint(dst, txnr, 10)
	dst = append(dst, ' ')
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(data)), 10)
	if len(data) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, data...)
	}
	return append(dst, '\n')
}

// relpFrame is one frame read from the receiver.
type relpFrame struct {
	txnr uint64
	cmd  string
	data []byte
}

// readRELP reads one frame. data is valid until the next call.
func readRELP(r *bufio.Reader, buf []byte) (relpFrame, []byte, error) {
	var f relpFrame
	txnr, err := readRELPField(r, ' ')
	if err != nil {
		return f, buf, err
	}
	if f.txnr, err = strconv.ParseUint(txnr, 10, 32); err != nil || len(txnr) > 9 {
		return f, buf, fmt.Errorf("relp: bad transaction number %q", txnr)
	}
	if f.cmd, err = readRELPField(r, ' '); err != nil {
		return f, buf, err
	}
	// DATALEN ends at SP (data follows) or LF (no data).
	var n int
	digits := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return f, buf, err
		}
		if c == ' ' || c == '\n' {
			if digits == 0 {
				return f, buf, errors.New("relp: frame without DATALEN")
			}
			if c == '\n' {
				if n != 0 {
					return f, buf, errors.New("relp: frame ends before its data")
				}
				return f, buf, nil
			}
			break
		}
		if c < '0' || c > '9' || digits == 9 {
			return f, buf, fmt.Errorf("relp: bad DATALEN in a %q frame", f.cmd)
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if n > relpMaxFrame {
		return f, buf, fmt.Errorf("relp: a %q frame of %d bytes; answers are short", f.cmd, n)
	}
	if cap(buf) < n+1 {
		buf = make([]byte, n+1, max(n+1, 256))
	}
	buf = buf[:n+1]
	if _, err := io.ReadFull(r, buf); err != nil {
		return f, buf, err
	}
	if buf[n] != '\n' {
		return f, buf, errors.New("relp: frame without its LF trailer")
	}
	f.data = buf[:n]
	return f, buf, nil
}

// readRELPField reads up to sep: a header field of at most 32 bytes.
func readRELPField(r *bufio.Reader, sep byte) (string, error) {
	var b [33]byte
	n := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == sep {
			if n == 0 {
				return "", errors.New("relp: empty header field")
			}
			return string(b[:n]), nil
		}
		if n == 32 {
			return "", errors.New("relp: header field longer than 32 bytes")
		}
		b[n] = c
		n++
	}
}

// relpStatus splits an rsp's data into its code and text: "200 OK".
func relpStatus(data []byte) (code int, text string) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	c, t, _ := bytes.Cut(line, []byte{' '})
	code, err := strconv.Atoi(string(c))
	if err != nil {
		return 0, string(line)
	}
	return code, string(t)
}

// relpOpen opens the session on c: the open command, then its answer,
// read within the deadline. It returns the reader to go on with.
func relpOpen(c net.Conn, deadline time.Time) (*bufio.Reader, error) {
	offers := "relp_version=" + relpVersion + "\nrelp_software=m365tap\ncommands=syslog"
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := c.Write(appendRELP(nil, 1, "open", []byte(offers))); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(c, 4096)
	f, _, err := readRELP(r, nil)
	if err != nil {
		return nil, fmt.Errorf("relp: reading the answer to open: %w", err)
	}
	if f.cmd == "serverclose" {
		return nil, errRELPRefused
	}
	if f.cmd != "rsp" || f.txnr != 1 {
		return nil, fmt.Errorf("relp: answer to open is %q with transaction %d", f.cmd, f.txnr)
	}
	if code, text := relpStatus(f.data); code != 200 {
		return nil, fmt.Errorf("%w: %d %s", errRELPRefused, code, text)
	}
	syslog := false
	_, rest, _ := bytes.Cut(f.data, []byte{'\n'})
	for line := range bytes.SplitSeq(rest, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("commands=")); ok {
			for cmd := range bytes.SplitSeq(v, []byte{','}) {
				syslog = syslog || string(cmd) == "syslog"
			}
		}
	}
	if !syslog {
		return nil, errRELPNoSyslog
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return r, nil
}
