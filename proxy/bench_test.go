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
