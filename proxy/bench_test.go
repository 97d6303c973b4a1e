package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/logs"
	"github.com/m365tap/m365tap/proxy"
)

const bulkBytes = 64 << 20

// drain reads everything from c into a reusable buffer.
func drain(b *testing.B, r io.Reader, want int64) {
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != want {
		b.Fatalf("read %d bytes (%v), want %d", n, err, want)
	}
}

// BenchmarkTunnelBulk measures one CONNECT tunnel carrying 64 MiB from a
// loopback source to the client. Compare with BenchmarkTunnelBulkDirect:
// the tunnel stays on splice(2), so the two should be close
// (bench/splice.sh shows the syscalls).
func BenchmarkTunnelBulk(b *testing.B) {
	src := testnet.Source(b, bulkBytes)
	h := newHarness(b, proxy.Options{AllowPorts: []int{mustPort(src.Addr())}})
	b.SetBytes(bulkBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, resp, br := rawConnect(b, h.addr, src.Addr(), nil)
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		drain(b, br, bulkBytes)
		c.Close()
	}
}

func BenchmarkTunnelBulkDirect(b *testing.B) {
	src := testnet.Source(b, bulkBytes)
	b.SetBytes(bulkBytes)
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("tcp", src.Addr())
		if err != nil {
			b.Fatal(err)
		}
		drain(b, c, bulkBytes)
		c.Close()
	}
}

// BenchmarkPlainSmall measures small keep-alive plain-HTTP exchanges with
// full event logging to a discarding JSON encoder.
func BenchmarkPlainSmall(b *testing.B) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	b.Cleanup(origin.Close)
	// A discarding log: the benchmark measures the tap and its encoder,
	// not the test's collecting slice.
	h := newHarness(b, proxy.Options{Log: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logs.EncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))})
	client := h.client()
	client.Transport.(*http.Transport).DisableKeepAlives = false
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(origin.URL)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkTunnelSetup measures what the harness's tunnel workload costs the
// tap, without TLS's crypto in the same process: CONNECT, a 4-byte echo
// through the tunnel, close, with full event logging to a discarding JSON
// encoder. allocs/op counts client, echo server and tap together.
func BenchmarkTunnelSetup(b *testing.B) {
	echo := testnet.Echo(b)
	h := newHarness(b, proxy.Options{AllowPorts: []int{mustPort(echo.Addr())},
		Log: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logs.EncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))})
	req := []byte("CONNECT " + echo.Addr() + " HTTP/1.1\r\nHost: " + echo.Addr() + "\r\n\r\n")
	const answer = len("HTTP/1.1 200 OK\r\n\r\n")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 512)
		for pb.Next() {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			// The answer and the echo are read raw, so the client costs as
			// little as possible.
			got := 0
			for got < answer {
				n, err := c.Read(buf[got:])
				if err != nil {
					b.Fatalf("CONNECT answer: %q %v", buf[:got], err)
				}
				got += n
			}
			if string(buf[9:12]) != "200" {
				b.Fatalf("CONNECT answer: %q", buf[:got])
			}
			for range 2 { // the first passes the TLS observer, the second the pump
				if _, err := c.Write([]byte("ping")); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf[:4]); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
		}
	})
}
