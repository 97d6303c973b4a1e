package testnet

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is an authoritative DNS server on loopback that answers over UDP and
// TCP on the same port, with a behaviour chosen per name: addresses, an
// error rcode, silence, or garbage. Unknown names get NXDOMAIN.
type DNS struct {
	udp  net.PacketConn
	tcp  net.Listener
	done chan struct{}

	mu      sync.Mutex
	names   map[string]behaviour
	queries int
	perName map[string]int
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

type behaviourKind int

const (
	answerAddrs behaviourKind = iota
	answerRcode
	answerNothing
	answerGarbage
)

type behaviour struct {
	kind  behaviourKind
	addrs []netip.Addr
	rcode dnsmessage.RCode
}

// dnsTTL is short because nothing should cache a fixture's answers past
// the test that set them.
const dnsTTL = 5

// maxUDPPayload is what a client that sends no EDNS0 OPT record can take
// (RFC 1035 section 4.2.1).
const maxUDPPayload = 512

// NewDNS starts a DNS server on 127.0.0.1, UDP and TCP on one port.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{
		done:    make(chan struct{}),
		names:   make(map[string]behaviour),
		perName: make(map[string]int),
		conns:   make(map[net.Conn]struct{}),
	}
	// The UDP port is picked first and TCP asked for the same number; a
	// clash with an unrelated TCP listener is possible but rare, so retry a
	// few times rather than fail.
	var err error
	for range 10 {
		d.udp, d.tcp, err = listenPair()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testnet: dns: listen: %v", err)
	}
	d.wg.Add(2)
	go d.serveUDP()
	go d.serveTCP()
	t.Cleanup(d.close)
	return d
}

func listenPair() (net.PacketConn, net.Listener, error) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	tcp, err := net.Listen("tcp", udp.LocalAddr().String())
	if err != nil {
		udp.Close()
		return nil, nil, err
	}
	return udp, tcp, nil
}

// Addr is the host:port the server answers on, for both UDP and TCP.
func (d *DNS) Addr() string { return d.udp.LocalAddr().String() }

// Dial connects to the server whatever address it is asked for, over the
// network the caller names ("udp" or "tcp"). It has the signature of
// net.Resolver.Dial, whose address argument comes from /etc/resolv.conf
// and must be ignored here.
func (d *DNS) Dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var dialer net.Dialer
	return dialer.DialContext(ctx, network, d.Addr())
}

// Resolver returns a pure-Go resolver that sends every query to this
// server. It still consults /etc/hosts first and tries the search domains
// of /etc/resolv.conf, as any Go resolver does, so tests should use names
// under .test (RFC 2606), which hosts files do not carry, and end them with
// a dot when query counts matter.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: d.Dial}
}

// SetA makes name resolve to ips: IPv4 addresses answer A queries and IPv6
// addresses answer AAAA queries. A query for a family with no address gets
// NOERROR with no answers (NODATA), as from a real zone. It replaces
// whatever was set for name before.
func (d *DNS) SetA(name string, ips ...netip.Addr) {
	addrs := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		// An IPv4-mapped IPv6 address is the IPv4 address for DNS purposes.
		addrs[i] = ip.Unmap()
	}
	d.set(name, behaviour{kind: answerAddrs, addrs: addrs})
}

// SetRcode makes every query for name answer with rcode and no records:
// dnsmessage.RCodeNameError (NXDOMAIN), RCodeServerFailure (SERVFAIL),
// RCodeRefused (REFUSED) and so on. RCodeSuccess gives NODATA.
func (d *DNS) SetRcode(name string, rcode dnsmessage.RCode) {
	d.set(name, behaviour{kind: answerRcode, rcode: rcode})
}

// SetDrop makes the server read and count queries for name and never
// answer, so the client times out.
func (d *DNS) SetDrop(name string) {
	d.set(name, behaviour{kind: answerNothing})
}

// SetMalformed makes the server answer queries for name with bytes that
// carry the query's ID and a plausible header but do not parse as a
// message.
//
// Go's resolver treats such a reply differently per transport: over TCP it
// fails with "cannot unmarshal DNS message", but over UDP it discards the
// reply as a possible forgery and keeps waiting (golang.org/issue/13281),
// so the lookup ends in a timeout.
func (d *DNS) SetMalformed(name string) {
	d.set(name, behaviour{kind: answerGarbage})
}

// Queries is the number of queries received, over UDP and TCP, including
// dropped ones.
func (d *DNS) Queries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// QueriesFor is the number of queries received for name, of any type.
func (d *DNS) QueriesFor(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.perName[canonical(name)]
}

func (d *DNS) set(name string, b behaviour) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names[canonical(name)] = b
}

// canonical folds the spellings of one name together: DNS names compare
// case-insensitively (RFC 4343), and the root label is implied.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

func (d *DNS) serveUDP() {
	defer d.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, peer, err := d.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp := d.answer(buf[:n], true); resp != nil {
			_, _ = d.udp.WriteTo(resp, peer)
		}
	}
}

func (d *DNS) serveTCP() {
	defer d.wg.Done()
	for {
		c, err := d.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-d.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			c.Close()
			return
		}
		d.conns[c] = struct{}{}
		d.wg.Add(1)
		d.mu.Unlock()
		go d.serveConn(c)
	}
}

// serveConn answers length-prefixed messages (RFC 1035 section 4.2.2) until
// the client closes; a client may send several on one connection (RFC 7766
// section 6.2.1).
func (d *DNS) serveConn(c net.Conn) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
		c.Close()
	}()
	var prefix [2]byte
	for {
		if _, err := io.ReadFull(c, prefix[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(prefix[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := d.answer(msg, false)
		if resp == nil {
			continue
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

func (d *DNS) close() {
	d.mu.Lock()
	d.closed = true
	conns := make([]net.Conn, 0, len(d.conns))
	for c := range d.conns {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	close(d.done)
	d.udp.Close()
	d.tcp.Close()
	for _, c := range conns {
		c.Close()
	}
	d.wg.Wait()
}

// answer builds the reply to one query, or nil for no reply: for a dropped
// name, and for input that is not a query at all, which a server must not
// answer lest two servers answer each other forever.
func (d *DNS) answer(query []byte, udp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return build(h, nil, dnsmessage.RCodeFormatError, nil, false)
	}
	name := canonical(q.Name.String())

	d.mu.Lock()
	d.queries++
	d.perName[name]++
	b, ok := d.names[name]
	d.mu.Unlock()
	if !ok {
		b = behaviour{kind: answerRcode, rcode: dnsmessage.RCodeNameError}
	}

	switch b.kind {
	case answerNothing:
		return nil
	case answerGarbage:
		return garbage(h.ID)
	case answerRcode:
		return build(h, &q, b.rcode, nil, false)
	}
	resp := build(h, &q, dnsmessage.RCodeSuccess, b.addrs, false)
	if udp && len(resp) > udpLimit(&p) {
		// Too big for the client's buffer: send the header and question with
		// TC set, which tells it to retry over TCP (RFC 1035 section 4.2.1).
		resp = build(h, &q, dnsmessage.RCodeSuccess, nil, true)
	}
	return resp
}

// udpLimit is the largest UDP reply the client accepts: the size in its
// EDNS0 OPT record if it sent one (RFC 6891 section 6.2.3), else 512. p must
// be positioned after the question section.
func udpLimit(p *dnsmessage.Parser) int {
	if p.SkipAllQuestions() != nil || p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return maxUDPPayload
	}
	for {
		rh, err := p.AdditionalHeader()
		if err != nil {
			return maxUDPPayload
		}
		if rh.Type == dnsmessage.TypeOPT {
			return max(int(rh.Class), maxUDPPayload)
		}
		if p.SkipAdditional() != nil {
			return maxUDPPayload
		}
	}
}

// build encodes a reply to the query with header qh; truncated sets TC. The reply claims to be
// authoritative and to offer recursion: Go's resolver takes a NOERROR reply
// with neither flag and no answers for a lame referral and tries the next
// server instead of reporting NODATA.
func build(qh dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, addrs []netip.Addr, truncated bool) []byte {
	h := dnsmessage.Header{
		ID:                 qh.ID,
		Response:           true,
		OpCode:             qh.OpCode,
		Authoritative:      true,
		Truncated:          truncated,
		RecursionDesired:   qh.RecursionDesired,
		RecursionAvailable: true,
		RCode:              rcode,
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil
	}
	if q != nil {
		if err := b.Question(*q); err != nil {
			return nil
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil
	}
	if q != nil && q.Class == dnsmessage.ClassINET {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
		for _, a := range addrs {
			var err error
			switch {
			case q.Type == dnsmessage.TypeA && a.Is4():
				err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			case q.Type == dnsmessage.TypeAAAA && a.Is6():
				err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
			if err != nil {
				return nil
			}
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}

// garbage is a reply whose 12-byte header parses, carries the query's ID
// and promises a question, but whose question is a label that runs past the
// end of the message.
func garbage(id uint16) []byte {
	return []byte{
		byte(id >> 8), byte(id), // ID
		0x84, 0x80, // QR, AA, RA; NOERROR
		0, 1, // QDCOUNT
		0, 1, // ANCOUNT
		0, 0, 0, 0,
		63, 'x', 'x', // a 63-byte label with two bytes present
	}
}
