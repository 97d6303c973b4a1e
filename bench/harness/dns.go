package main

import (
	"net"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// originZone is the names the origin's DNS server answers: any name under
// it is 127.0.0.1 (A) and has no AAAA; other names do not exist.
const originZone = "bench.test."

// serveDNS answers queries on pc until it is closed. Real clients CONNECT
// to names, never to IP literals: a proxy then resolves the name for each
// new upstream connection (or answers it from a cache, as Squid's ipcache
// does), and a benchmark that CONNECTs to 127.0.0.1 never measures that.
func serveDNS(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := dnsAnswer(buf[:n]); out != nil {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

func dnsAnswer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(question.Name.String())
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	known := name == originZone || strings.HasSuffix(name, "."+originZone)
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(question) != nil || b.StartAnswers() != nil {
		return nil
	}
	if known && question.Type == dnsmessage.TypeA {
		rr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 300}
		if b.AResource(rr, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}) != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
