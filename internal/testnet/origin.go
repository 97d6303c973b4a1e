package testnet

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TLSOptions shapes a TLS origin.
type TLSOptions struct {
	// MinVersion is the lowest TLS version offered, such as
	// tls.VersionTLS12; zero means crypto/tls's server default (TLS 1.2).
	MinVersion uint16
	// MaxVersion is the highest TLS version offered; zero means crypto/tls's
	// default (TLS 1.3).
	MaxVersion uint16
	// Names go into the leaf certificate (DNS names or IP literals); empty
	// means 127.0.0.1, ::1 and localhost, which suits dialing the origin by
	// its own address.
	Names []string
}

// defaultOriginNames cover every way a test reaches an origin directly.
var defaultOriginNames = []string{"127.0.0.1", "::1", "localhost"}

// NewTLSOrigin starts an HTTPS server on 127.0.0.1 that presents a leaf
// from ca for opts.Names and speaks HTTP/1.1 only, so what crosses a
// tunnel is the same whichever client a test uses. Its Client trusts ca and
// uses no proxy.
//
// Cleanup closes client connections before closing the server, so a
// handler blocked on r.Context() returns instead of holding the test up.
func NewTLSOrigin(t testing.TB, ca *CA, handler http.Handler, opts TLSOptions) *httptest.Server {
	t.Helper()
	names := opts.Names
	if len(names) == 0 {
		names = defaultOriginNames
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ErrorLog = testLogger(t)
	srv.EnableHTTP2 = false
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Leaf(t, names...)},
		MinVersion:   opts.MinVersion,
		MaxVersion:   opts.MaxVersion,
		// Set explicitly: an empty list lets httptest pick, and a client
		// that offers h2 must be told no.
		NextProtos: []string{"http/1.1"},
	}
	srv.StartTLS()
	// httptest's own client trusts the leaf itself; replace it with one that
	// verifies the chain to ca, as the proxy must.
	srv.Client().Transport = &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
	}
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// NewHTTPOrigin starts a plain HTTP server on 127.0.0.1, torn down like a
// TLS origin. Its Client uses no proxy.
func NewHTTPOrigin(t testing.TB, handler http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ErrorLog = testLogger(t)
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}
