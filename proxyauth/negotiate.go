package proxyauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// NegotiateOptions configure NewNegotiate. Kerberos needs SPN and either
// Keytab or CCache; NTLM (inside Negotiate) needs User and Password. With
// both, NTLM is the fallback for a connection whose Kerberos ticket cannot
// be had, as Windows falls back.
type NegotiateOptions struct {
	// SPN is the parent's service principal, "HTTP/<parent host as
	// configured>", such as "HTTP/proxy.corp.example". Required with
	// Kerberos. A client derives it from the name it was given, never from
	// DNS, so it must be the name the parent's keytab holds.
	SPN string
	// Krb5Conf is the krb5.conf that names the realm and its KDCs. Empty
	// means $KRB5_CONFIG, else /etc/krb5.conf.
	Krb5Conf string
	// Keytab is a keytab holding the tap's own key; the tap logs in as
	// User ("name" in the default realm, or "name@REALM"), or, when User
	// is empty, as the keytab's first principal. A keytab login renews
	// itself. Empty: no keytab.
	Keytab string
	// CCache is a credential cache file (kinit's), used when Keytab is
	// empty. Its ticket expires as kinit's does. Empty: none.
	CCache string
	// User, Domain and Password are the NTLM fallback (Domain the NetBIOS
	// domain, such as CORP); User also names the keytab principal.
	// Workstation is the name the tap gives for itself in NTLM; empty is usual.
	User, Domain, Password, Workstation string
}

// NewNegotiate returns a Client for Negotiate (RFC 4559): a Kerberos
// ticket for o.SPN wrapped in SPNEGO (gokrb5), or NTLMv2 inside Negotiate
// when no Kerberos source is configured or a ticket cannot be had for a
// connection and NTLM credentials are given. A krb5.conf, keytab or
// credential cache that cannot be read is an error here, not a fallback:
// it is a mistake in the configuration.
func NewNegotiate(o NegotiateOptions) (Client, error) {
	c := &negotiateClient{spn: o.SPN, ntlm: ntlmCreds{o.Domain, o.User, o.Password, o.Workstation}}
	if o.Keytab == "" && o.CCache == "" {
		if !c.ntlm.valid() {
			return nil, errors.New("proxyauth: negotiate needs a keytab or a credential cache for Kerberos, or a user and password for NTLM")
		}
		return c, nil
	}
	if o.SPN == "" {
		return nil, errors.New("proxyauth: negotiate with Kerberos needs the parent's SPN, such as HTTP/proxy.corp.example")
	}
	confPath := o.Krb5Conf
	if confPath == "" {
		confPath = os.Getenv("KRB5_CONFIG")
	}
	if confPath == "" {
		confPath = "/etc/krb5.conf"
	}
	conf, err := krbconfig.Load(confPath)
	if err != nil {
		return nil, fmt.Errorf("proxyauth: krb5.conf %s: %w", confPath, err)
	}
	// PA-FX-FAST needs armour that neither MIT's KDC nor Active Directory
	// requires by default; gokrb5's own documentation advises off.
	opt := client.DisablePAFXFAST(true)
	switch {
	case o.Keytab != "":
		kt, err := keytab.Load(o.Keytab)
		if err != nil {
			return nil, fmt.Errorf("proxyauth: keytab %s: %w", o.Keytab, err)
		}
		user, realm, _ := strings.Cut(o.User, "@")
		if user == "" {
			if len(kt.Entries) == 0 {
				return nil, fmt.Errorf("proxyauth: keytab %s holds no key", o.Keytab)
			}
			p := kt.Entries[0].Principal
			user, realm = strings.Join(p.Components, "/"), p.Realm
		}
		if realm == "" {
			realm = conf.LibDefaults.DefaultRealm
		}
		c.krb = client.NewWithKeytab(user, realm, kt, conf, opt)
	default:
		cc, err := credentials.LoadCCache(strings.TrimPrefix(o.CCache, "FILE:"))
		if err != nil {
			return nil, fmt.Errorf("proxyauth: credential cache %s: %w", o.CCache, err)
		}
		if c.krb, err = client.NewFromCCache(cc, conf, opt); err != nil {
			return nil, fmt.Errorf("proxyauth: credential cache %s: %w", o.CCache, err)
		}
	}
	return c, nil
}

type negotiateClient struct {
	spn  string
	krb  *client.Client // nil: NTLM only
	ntlm ntlmCreds
}

func (c *negotiateClient) Scheme() Scheme { return SchemeNegotiate }

// Start gets a service ticket (gokrb5 caches it, and the TGT, across
// connections) and builds a fresh AP-REQ: each connection needs its own
// authenticator, or the parent's replay cache refuses it.
func (c *negotiateClient) Start() (Handshake, error) {
	if c.krb == nil {
		return &ntlmHandshake{scheme: SchemeNegotiate, creds: c.ntlm}, nil
	}
	header, err := c.kerberos()
	if err != nil {
		if c.ntlm.valid() {
			return &ntlmHandshake{scheme: SchemeNegotiate, creds: c.ntlm}, nil
		}
		return nil, err
	}
	return &oneLeg{scheme: SchemeNegotiate, header: header}, nil
}

func (c *negotiateClient) kerberos() (string, error) {
	if err := c.krb.AffirmLogin(); err != nil {
		return "", fmt.Errorf("proxyauth: Kerberos login: %w", err)
	}
	tkt, key, err := c.krb.GetServiceTicket(c.spn)
	if err != nil {
		return "", fmt.Errorf("proxyauth: Kerberos ticket for %s: %w", c.spn, err)
	}
	init, err := spnego.NewNegTokenInitKRB5(c.krb, tkt, key)
	if err != nil {
		return "", fmt.Errorf("proxyauth: SPNEGO token for %s: %w", c.spn, err)
	}
	tok := spnego.SPNEGOToken{Init: true, NegTokenInit: init}
	b, err := tok.Marshal()
	if err != nil {
		return "", fmt.Errorf("proxyauth: SPNEGO token for %s: %w", c.spn, err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(b), nil
}
