package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// originInfo is what the origin process tells the harness on its first
// line of standard output.
type originInfo struct {
	HTTP   string `json:"http"`   // plain HTTP: /small, /large?n=, /stream?n=
	TLS    string `json:"tls"`    // the same handler over TLS (ECDSA P-256, test CA)
	Echo   string `json:"echo"`   // TCP echo
	Source string `json:"source"` // TCP source: writes until the peer goes away
	DNS    string `json:"dns"`    // UDP DNS server for *.bench.test (-names), or ""
	CAPEM  string `json:"ca_pem"`
}

// tlsServerName is the SNI and certificate name of the TLS origin.
const tlsServerName = "origin.bench.test"

const smallBody = 128

var (
	small = func() []byte {
		b := make([]byte, smallBody)
		for i := range b {
			b[i] = 'a' + byte(i%26)
		}
		return b
	}()
	chunk256k = make([]byte, 256<<10)
)

// runOrigin serves until standard input closes (the harness went away) or
// lifetime passes, whichever comes first.
func runOrigin(lifetime time.Duration, dnsAddr string) error {
	caCert, caKey, err := newCA()
	if err != nil {
		return err
	}
	leaf, err := newLeaf(caCert, caKey, tlsServerName)
	if err != nil {
		return err
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "origin:", err)
			os.Exit(1)
		}
		return ln
	}
	httpLn, tlsLn, echoLn, srcLn := listen(), listen(), listen(), listen()
	h := http.HandlerFunc(originHandler)
	go func() { _ = (&http.Server{Handler: h, IdleTimeout: 5 * time.Minute}).Serve(httpLn) }()
	tcfg := &tls.Config{Certificates: []tls.Certificate{leaf}, SessionTicketsDisabled: true}
	go func() {
		_ = (&http.Server{Handler: h, IdleTimeout: 5 * time.Minute}).Serve(tls.NewListener(tlsLn, tcfg))
	}()
	go acceptLoop(echoLn, echo)
	go acceptLoop(srcLn, func(c net.Conn) {
		for {
			if _, err := c.Write(chunk256k); err != nil {
				return
			}
		}
	})
	var dnsListen string
	if dnsAddr != "" {
		pc, err := net.ListenPacket("udp", dnsAddr)
		if err != nil {
			return fmt.Errorf("dns: %v", err)
		}
		go serveDNS(pc)
		dnsListen = pc.LocalAddr().String()
	}
	info := originInfo{
		DNS:  dnsListen,
		HTTP: httpLn.Addr().String(), TLS: tlsLn.Addr().String(),
		Echo: echoLn.Addr().String(), Source: srcLn.Addr().String(),
		CAPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})),
	}
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(lifetime):
	}
	return nil
}

func acceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			serve(c)
		}()
	}
}

// echo sends back what it reads, and closes when a read starts with 'q':
// the origin closing first leaves TIME_WAIT on its listening port, not on
// an ephemeral port of the proxy or the generator, so tens of thousands of
// tunnels can be opened and closed without running out of ports.
func echo(c net.Conn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 && buf[0] == 'q' {
			return
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// originHandler: /small answers 128 bytes; /large?n=N streams N bytes with a
// Content-Length; /stream?n=N streams N bytes chunked. Nothing is cacheable.
func originHandler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/large", "/stream":
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if n <= 0 {
			n = 64 << 20
		}
		if r.URL.Path == "/large" {
			h.Set("Content-Length", strconv.FormatInt(n, 10))
		}
		for n > 0 {
			k := min(n, int64(len(chunk256k)))
			if _, err := w.Write(chunk256k[:k]); err != nil {
				return
			}
			n -= k
		}
	default:
		h.Set("Content-Length", strconv.Itoa(len(small)))
		_, _ = w.Write(small)
	}
}

func newCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "m365tap bench CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
