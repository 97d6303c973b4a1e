package testnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// exchangeUDP sends one query for name and type and returns the raw reply,
// so tests can see exactly what the server sent, below any resolver.
func exchangeUDP(t *testing.T, d *DNS, name string, qtype dnsmessage.Type, edns bool) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0xbeef, RecursionDesired: true})
	b.EnableCompression()
	must(t, b.StartQuestions())
	must(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET}))
	if edns {
		must(t, b.StartAdditionals())
		var rh dnsmessage.ResourceHeader
		must(t, rh.SetEDNS0(4096, dnsmessage.RCodeSuccess, false))
		must(t, b.OPTResource(rh, dnsmessage.OPTResource{}))
	}
	query, err := b.Finish()
	must(t, err)

	c, err := net.Dial("udp", d.Addr())
	must(t, err)
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(2*time.Second)))
	_, err = c.Write(query)
	must(t, err)
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	must(t, err)
	return buf[:n]
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestDNSAnswersGoResolver(t *testing.T) {
	t.Parallel()
	d := NewDNS(t)
	d.SetA("dual.test", addrs("127.0.0.2", "::1")...)
	d.SetA("Mixed.Case.TEST.", addrs("127.0.0.3")...)
	d.SetA("v6only.test", addrs("::1")...)
	d.SetA("mapped.test", addrs("::ffff:127.0.0.4")...)

	tests := []struct {
		name, network, host string
		want                []netip.Addr
	}{
		{"both families", "ip", "dual.test", addrs("127.0.0.2", "::1")},
		{"A only", "ip4", "dual.test", addrs("127.0.0.2")},
		{"AAAA only", "ip6", "dual.test", addrs("::1")},
		{"case-insensitive", "ip4", "mixed.CASE.test", addrs("127.0.0.3")},
		{"IPv6 only name", "ip", "v6only.test", addrs("::1")},
		{"IPv4-mapped answers A", "ip4", "mapped.test", addrs("127.0.0.4")},
	}
	r := d.Resolver()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// A trailing dot keeps the resolver from trying the host's search
			// domains first.
			got, err := r.LookupNetIP(ctx, tc.network, tc.host+".")
			if err != nil {
				t.Fatalf("LookupNetIP(%q, %q): %v", tc.network, tc.host, err)
			}
			slices.SortFunc(got, netip.Addr.Compare)
			want := slices.Clone(tc.want)
			slices.SortFunc(want, netip.Addr.Compare)
			if !slices.Equal(got, want) {
				t.Errorf("LookupNetIP(%q, %q) = %v, want %v", tc.network, tc.host, got, want)
			}
		})
	}
}

func TestDNSFailuresGoResolver(t *testing.T) {
	t.Parallel()
	d := NewDNS(t)
	d.SetRcode("nx.test", dnsmessage.RCodeNameError)
	d.SetRcode("servfail.test", dnsmessage.RCodeServerFailure)
	d.SetRcode("refused.test", dnsmessage.RCodeRefused)
	d.SetA("nodata.test")

	tests := []struct {
		host         string
		wantNotFound bool
	}{
		{"unknown.test", true},
		{"nx.test", true},
		{"nodata.test", true},
		{"servfail.test", false},
		{"refused.test", false},
	}
	r := d.Resolver()
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := r.LookupNetIP(ctx, "ip", tc.host+".")
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) {
				t.Fatalf("LookupNetIP(%q) error = %v, want a *net.DNSError", tc.host, err)
			}
			if dnsErr.IsNotFound != tc.wantNotFound {
				t.Errorf("IsNotFound = %v, want %v (%v)", dnsErr.IsNotFound, tc.wantNotFound, err)
			}
			if dnsErr.IsTimeout {
				t.Errorf("IsTimeout = true, want an answer, not a timeout (%v)", err)
			}
		})
	}
}

func TestDNSDropTimesOut(t *testing.T) {
	t.Parallel()
	d := NewDNS(t)
	d.SetDrop("drop.test")

	t.Run("query counted, never answered", func(t *testing.T) {
		c, err := d.Dial(context.Background(), "udp", "")
		must(t, err)
		defer c.Close()
		query, err := (&dnsmessage.Message{
			Header:    dnsmessage.Header{ID: 7},
			Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("DROP.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
		}).Pack()
		must(t, err)
		_, err = c.Write(query)
		must(t, err)
		WaitFor(t, func() bool { return d.QueriesFor("drop.test") == 1 }, 5*time.Second)
		must(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		if _, err := c.Read(make([]byte, 512)); !isTimeout(err) {
			t.Fatalf("read: %v, want a timeout", err)
		}
	})

	t.Run("go resolver times out within its deadline", func(t *testing.T) {
		const deadline = 300 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		_, err := d.Resolver().LookupNetIP(ctx, "ip4", "drop.test.")
		elapsed := time.Since(start)

		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsTimeout || dnsErr.IsNotFound {
			t.Fatalf("LookupNetIP error = %#v, want a timeout *net.DNSError", err)
		}
		if elapsed > deadline+2*time.Second {
			t.Errorf("lookup took %v, want it bounded by the %v deadline", elapsed, deadline)
		}
	})
}

func TestDNSMalformed(t *testing.T) {
	t.Parallel()
	d := NewDNS(t)
	d.SetMalformed("garbage.test")

	t.Run("raw reply does not parse", func(t *testing.T) {
		reply := exchangeUDP(t, d, "garbage.test.", dnsmessage.TypeA, false)
		var m dnsmessage.Message
		if err := m.Unpack(reply); err == nil {
			t.Fatalf("reply %x unpacked cleanly, want garbage", reply)
		}
		if len(reply) < 2 || reply[0] != 0xbe || reply[1] != 0xef {
			t.Errorf("reply %x does not carry the query ID", reply)
		}
	})

	t.Run("go resolver over TCP", func(t *testing.T) {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.Dial(ctx, "tcp", addr)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := r.LookupNetIP(ctx, "ip4", "garbage.test.")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || dnsErr.IsNotFound || dnsErr.IsTimeout {
			t.Fatalf("LookupNetIP error = %v, want a DNSError that is neither not-found nor timeout", err)
		}
	})
}

func TestDNSTCPAndTruncation(t *testing.T) {
	t.Parallel()
	d := NewDNS(t)
	// 100 A records cannot fit in 512 bytes.
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{127, 1, 0, byte(i + 1)}))
	}
	d.SetA("many.test", many...)

	t.Run("UDP without EDNS0 is truncated", func(t *testing.T) {
		var m dnsmessage.Message
		must(t, m.Unpack(exchangeUDP(t, d, "many.test.", dnsmessage.TypeA, false)))
		if !m.Truncated || len(m.Answers) != 0 {
			t.Errorf("TC = %v with %d answers, want TC and none", m.Truncated, len(m.Answers))
		}
	})
	t.Run("UDP with EDNS0 fits", func(t *testing.T) {
		var m dnsmessage.Message
		must(t, m.Unpack(exchangeUDP(t, d, "many.test.", dnsmessage.TypeA, true)))
		if m.Truncated || len(m.Answers) != len(many) {
			t.Errorf("TC = %v with %d answers, want %d", m.Truncated, len(m.Answers), len(many))
		}
	})
	t.Run("go resolver over TCP", func(t *testing.T) {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.Dial(ctx, "tcp", addr)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := r.LookupNetIP(ctx, "ip4", "many.test.")
		must(t, err)
		if len(got) != len(many) {
			t.Errorf("got %d addresses over TCP, want %d", len(got), len(many))
		}
	})
}

func TestDNSQueriesAndReplacement(t *testing.T) {
	t.Parallel()
	d := NewDNS(t)
	d.SetA("swap.test", addrs("127.0.0.5")...)

	var m dnsmessage.Message
	must(t, m.Unpack(exchangeUDP(t, d, "swap.test.", dnsmessage.TypeA, false)))
	if len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.AResource).A != [4]byte{127, 0, 0, 5} {
		t.Fatalf("answers = %v, want 127.0.0.5", m.Answers)
	}
	if !m.Authoritative || !m.RecursionAvailable || m.ID != 0xbeef {
		t.Errorf("header = %+v, want AA, RA and the query ID", m.Header)
	}

	d.SetRcode("SWAP.test", dnsmessage.RCodeServerFailure)
	must(t, m.Unpack(exchangeUDP(t, d, "swap.test.", dnsmessage.TypeA, false)))
	if m.RCode != dnsmessage.RCodeServerFailure {
		t.Errorf("rcode after SetRcode = %v, want SERVFAIL", m.RCode)
	}
	must(t, m.Unpack(exchangeUDP(t, d, "other.test.", dnsmessage.TypeAAAA, false)))
	if m.RCode != dnsmessage.RCodeNameError {
		t.Errorf("rcode for an unknown name = %v, want NXDOMAIN", m.RCode)
	}

	if got := d.Queries(); got != 3 {
		t.Errorf("Queries() = %d, want 3", got)
	}
	if got := d.QueriesFor("swap.TEST"); got != 2 {
		t.Errorf("QueriesFor(swap.TEST) = %d, want 2", got)
	}
}
