package testnet

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveTLS accepts TLS connections with cert until the test ends and
// completes each handshake, so the client sees the server's real verdict.
func serveTLS(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestCALeafVerifies(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	other := NewCA(t)

	isHostname := func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }
	isUnknownAuthority := func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }
	isExpired := func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == x509.Expired
	}
	tests := []struct {
		name       string
		cert       tls.Certificate
		serverName string
		wantErr    func(error) bool // nil: the handshake must succeed
	}{
		{"DNS name", ca.Leaf(t, "login.test"), "login.test", nil},
		{"wildcard", ca.Leaf(t, "*.login.test"), "a.login.test", nil},
		{"IPv4 literal", ca.Leaf(t, "127.0.0.1"), "127.0.0.1", nil},
		{"IPv6 literal", ca.Leaf(t, "login.test", "::1"), "::1", nil},
		{"wrong name", ca.Leaf(t, "login.test"), "graph.test", isHostname},
		{"wildcard is one label", ca.Leaf(t, "*.login.test"), "login.test", isHostname},
		{"other CA", other.Leaf(t, "login.test"), "login.test", isUnknownAuthority},
		{
			"expired",
			ca.LeafWith(t, LeafOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, "login.test"),
			"login.test", isExpired,
		},
		{
			"not yet valid",
			ca.LeafWith(t, LeafOptions{NotBefore: time.Now().Add(24 * time.Hour)}, "login.test"),
			"login.test", isExpired, // x509 uses one reason for both ends of the window
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveTLS(t, tc.cert)
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: tc.serverName, RootCAs: ca.Pool()})
			if c != nil {
				defer c.Close()
			}
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("handshake error = %v, not the expected kind", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := c.ConnectionState().PeerCertificates[0].Issuer.CommonName; got != ca.Cert().Subject.CommonName {
				t.Errorf("issuer = %q, want %q", got, ca.Cert().Subject.CommonName)
			}
		})
	}
}

func TestCAPEM(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	block, rest := pem.Decode(ca.PEM())
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("PEM() = %q, want one CERTIFICATE block", ca.PEM())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	must(t, err)
	if !cert.Equal(ca.Cert()) || !cert.IsCA {
		t.Error("PEM() does not hold the CA certificate")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM()) {
		t.Fatal("AppendCertsFromPEM rejected PEM()")
	}
	leaf := ca.Leaf(t, "login.test").Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "login.test", Roots: pool}); err != nil {
		t.Errorf("leaf does not verify against a pool built from PEM(): %v", err)
	}
}

func TestTLSOriginVersions(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %x", r.Proto, r.TLS.Version)
	})

	tests := []struct {
		name        string
		origin      TLSOptions
		clientMax   uint16
		wantVersion uint16
		wantErr     string
	}{
		{"defaults negotiate TLS 1.3", TLSOptions{}, 0, tls.VersionTLS13, ""},
		{"origin capped at TLS 1.2", TLSOptions{MaxVersion: tls.VersionTLS12}, 0, tls.VersionTLS12, ""},
		{"origin demands TLS 1.3, client offers 1.2", TLSOptions{MinVersion: tls.VersionTLS13}, tls.VersionTLS12, 0, "protocol version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewTLSOrigin(t, ca, hello, tc.origin)
			tr := &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), MaxVersion: tc.clientMax, NextProtos: []string{"h2", "http/1.1"}},
				ForceAttemptHTTP2: true,
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(srv.URL)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("GET error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			must(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			must(t, err)
			if want := fmt.Sprintf("HTTP/1.1 %x", tc.wantVersion); string(body) != want {
				t.Errorf("origin saw %q, want %q", body, want)
			}
		})
	}
}

func TestTLSOriginNamesAndClient(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	t.Run("default names suit the origin's own client", func(t *testing.T) {
		srv := NewTLSOrigin(t, ca, ok, TLSOptions{})
		resp, err := srv.Client().Get(srv.URL)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status = %d", resp.StatusCode)
		}
	})

	t.Run("named origin reached by name", func(t *testing.T) {
		srv := NewTLSOrigin(t, ca, ok, TLSOptions{Names: []string{"login.test"}})
		c, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{ServerName: "login.test", RootCAs: ca.Pool()})
		must(t, err)
		c.Close()
		// The origin's address is not among its names, so its own client,
		// which dials by address, must fail verification.
		_, err = srv.Client().Get(srv.URL)
		var hostErr x509.HostnameError
		if !errors.As(err, &hostErr) {
			t.Errorf("GET by address error = %v, want x509.HostnameError", err)
		}
	})
}
