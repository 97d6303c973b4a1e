package testnet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"testing"
	"time"
)

// CA is a certificate authority made for one test: an ECDSA P-256 key and
// a self-signed root that nothing outside the test trusts.
type CA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	der  []byte
}

// certSkew backdates certificates so a leaf made this instant is already
// valid on a peer whose clock runs slightly behind.
const certSkew = time.Hour

// certLifetime outlives any test run by a wide margin.
const certLifetime = 24 * time.Hour

// NewCA makes a new root certificate and key. Generating a P-256 key takes
// well under a millisecond, so every test can afford its own.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testnet: ca: key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{Organization: []string{"m365tap test"}, CommonName: "m365tap test CA"},
		NotBefore:             now.Add(-certSkew),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Only leaves below the root: a chain with an unexpected
		// intermediate is a failure, not something to accept.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testnet: ca: sign root: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testnet: ca: parse root: %v", err)
	}
	return &CA{key: key, cert: cert, der: der}
}

// Cert is the root certificate.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// Pool is a fresh pool holding only the root, for a client's RootCAs.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// PEM is the root certificate PEM-encoded, as a CA bundle file holds it.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// LeafOptions adjusts a leaf certificate.
type LeafOptions struct {
	// NotBefore is the start of validity; the zero value means an hour ago.
	NotBefore time.Time
	// NotAfter is the end of validity; the zero value means a day from now.
	// A time in the past makes an expired certificate.
	NotAfter time.Time
}

// Leaf issues a server certificate for names, each a DNS name (wildcards
// allowed) or an IP address literal, signed by the CA and valid from an
// hour ago for a day. The chain holds the leaf alone, as most servers send
// it.
func (ca *CA) Leaf(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	return ca.LeafWith(t, LeafOptions{}, names...)
}

// LeafWith is Leaf with a chosen validity window, for expired and
// not-yet-valid certificates.
func (ca *CA) LeafWith(t testing.TB, opts LeafOptions, names ...string) tls.Certificate {
	t.Helper()
	if len(names) == 0 {
		t.Fatalf("testnet: ca: leaf needs at least one name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testnet: ca: leaf key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-certSkew),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if !opts.NotBefore.IsZero() {
		tmpl.NotBefore = opts.NotBefore
	}
	if !opts.NotAfter.IsZero() {
		tmpl.NotAfter = opts.NotAfter
	}
	for _, n := range names {
		if ip, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("testnet: ca: sign leaf for %v: %v", names, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testnet: ca: parse leaf: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// serial is a random 128-bit serial number: RFC 5280 section 4.1.2.2 wants
// serials unique per issuer, and random ones need no shared counter.
func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("testnet: ca: serial: %v", err)
	}
	return n
}
