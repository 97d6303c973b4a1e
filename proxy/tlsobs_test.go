package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// captureClientHello returns the bytes a real crypto/tls client sends first.
func captureClientHello(t testing.TB, sni string, maxVersion uint16) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, MaxVersion: maxVersion, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Handshake()
	}()
	buf := make([]byte, 16<<10)
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestObserverClientHello feeds a real ClientHello in every chunking, down
// to one byte at a time, and always finds the SNI.
func TestObserverClientHello(t *testing.T) {
	hello := captureClientHello(t, "login.microsoftonline.com", 0)
	for _, chunk := range []int{1, 3, 5, 7, 100, len(hello)} {
		var o tlsObserver
		o.init(true)
		for i := 0; i < len(hello); i += chunk {
			o.feed(hello[i:min(i+chunk, len(hello))])
		}
		if o.sni != "login.microsoftonline.com" || o.notTLS || o.done {
			t.Errorf("chunk %d: sni=%q notTLS=%v done=%v", chunk, o.sni, o.notTLS, o.done)
		}
	}
}

// TestObserverRecords checks the record-level verdicts with hand-built records.
func TestObserverRecords(t *testing.T) {
	rec := func(typ byte, n int) []byte {
		b := []byte{typ, 3, 3, byte(n >> 8), byte(n)}
		return append(b, make([]byte, n)...)
	}
	cases := []struct {
		name   string
		client bool
		in     [][]byte
		check  func(o *tlsObserver) bool
	}{
		{"plaintext first byte", true, [][]byte{[]byte("GET / HTTP/1.1\r\n")}, func(o *tlsObserver) bool { return o.notTLS }},
		{"short plaintext", true, [][]byte{[]byte("pi")}, func(o *tlsObserver) bool { return o.notTLS }},
		{"plaintext alert", false, [][]byte{{21, 3, 3, 0, 2, 2, 40}}, func(o *tlsObserver) bool { return o.alert == 40 && o.done }},
		{"client finished", true, [][]byte{rec(22, 10), rec(20, 1), rec(23, 53)}, func(o *tlsObserver) bool { return o.handshakeDone }},
		{"client encrypted alert only", true, [][]byte{rec(22, 10), rec(20, 1), rec(23, 19)}, func(o *tlsObserver) bool { return !o.handshakeDone && o.smallAppData }},
		{"tls12 encrypted alert", true, [][]byte{rec(22, 10), rec(21, 26)}, func(o *tlsObserver) bool { return o.encryptedAlert }},
		{"garbage length", true, [][]byte{{22, 3, 3, 0xff, 0xff}}, func(o *tlsObserver) bool { return o.done && !o.handshakeDone }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o tlsObserver
			o.init(tc.client)
			for _, b := range tc.in {
				o.feed(b)
			}
			if !tc.check(&o) {
				t.Errorf("unexpected state %+v", o)
			}
		})
	}
}

// FuzzObserver: arbitrary bytes never panic the observer, and it always
// stops within its bounds.
func FuzzObserver(f *testing.F) {
	f.Add([]byte{22, 3, 1, 0, 5, 1, 0, 0, 1, 0}, true)
	f.Add([]byte{21, 3, 3, 0, 2, 2, 48}, false)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, client bool) {
		var o tlsObserver
		o.init(client)
		for len(data) > 0 {
			n := 1 + int(data[0])%7
			if n > len(data) {
				n = len(data)
			}
			o.feed(data[:n])
			data = data[n:]
		}
		if len(o.hs) > maxHelloBytes {
			t.Fatalf("hello buffer grew to %d", len(o.hs))
		}
	})
}

// leafDER makes a certificate issued by a named CA, as an inspecting
// device would show.
func leafDER(t testing.TB, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		Issuer:       pkix.Name{CommonName: "Contoso Inspection CA"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{cn},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertCache(t *testing.T) {
	var cc certCache
	a, b := leafDER(t, "login.microsoftonline.com"), leafDER(t, "officeclient.microsoft.com")
	for range 2 { // the second round is answered from the cache
		for _, der := range [][]byte{a, b, []byte("not a certificate")} {
			wi, ws := certNames(der)
			gi, gs := cc.names(der)
			if gi != wi || gs != ws {
				t.Fatalf("cache gave %q/%q, want %q/%q", gi, gs, wi, ws)
			}
		}
	}
	if len(cc.m) != 3 {
		t.Fatalf("%d entries, want 3", len(cc.m))
	}
	for i := range certCacheMax + 10 {
		cc.names([]byte{byte(i), byte(i >> 8)})
	}
	if len(cc.m) > certCacheMax {
		t.Fatalf("%d entries, want at most %d", len(cc.m), certCacheMax)
	}
}

// BenchmarkCertNames: what reading a TLS 1.2 leaf's names costs a tunnel,
// parsed and from the cache.
func BenchmarkCertNames(b *testing.B) {
	der := leafDER(b, "login.microsoftonline.com")
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			certNames(der)
		}
	})
	b.Run("cached", func(b *testing.B) {
		var cc certCache
		cc.names(der)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cc.names(der)
		}
	})
}
