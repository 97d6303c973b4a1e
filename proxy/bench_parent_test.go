package proxy_test

import (
	"bufio"
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

// The same workloads as BenchmarkPlainSmall and BenchmarkTunnelSetup, with
// a parent proxy that asks for no credentials: what the authentication
// relay costs exchanges that do not use it (their requests stay in the
// shared pool; their CONNECTs go out on the relay's own parent connection).
//
//	go test -run '^$' -bench 'Parent$' -benchmem -count 10 ./proxy

func benchLog() *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logs.EncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
}

func BenchmarkPlainSmallParent(b *testing.B) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	b.Cleanup(origin.Close)
	parent := testnet.NewParent(b, testnet.ParentOptions{})
	plainSmall(b, newHarness(b, proxy.Options{Parent: parent.URL(), Log: benchLog()}), origin.URL)
}

// plainSmall runs small keep-alive GETs of target through the tap in h,
// from GOMAXPROCS clients.
func plainSmall(b *testing.B, h *harness, target string) {
	client := h.client()
	client.Transport.(*http.Transport).DisableKeepAlives = false
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(target)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func BenchmarkTunnelSetupParent(b *testing.B) {
	echo := testnet.Echo(b)
	parent := testnet.NewParent(b, testnet.ParentOptions{})
	h := newHarness(b, proxy.Options{Parent: parent.URL(), AllowPorts: []int{mustPort(echo.Addr())}, Log: benchLog()})
	req := []byte("CONNECT " + echo.Addr() + " HTTP/1.1\r\nHost: " + echo.Addr() + "\r\n\r\n")
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
			resp, err := http.ReadResponse(bufioReader(c), &http.Request{Method: http.MethodConnect})
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("CONNECT answer: %v %v", resp, err)
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf[:4]); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

// bufioReader reads the CONNECT answer one byte at a time, so nothing the
// tunnel echoes is left in a buffer the benchmark then ignores.
func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(oneByte{c}, 16) }

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }
