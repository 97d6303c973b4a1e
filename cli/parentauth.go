package cli

import (
	"fmt"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/proxyauth"
)

// parentAuth builds the tap's own credentials for the parent from
// parent.auth; nil when no scheme is set (proxy then takes user:pass in
// parent.url as Basic, if any). A keytab, credential cache or krb5.conf
// that cannot be read fails here, at start, not on the first connection.
func parentAuth(cfg *config.Config) (proxyauth.Client, error) {
	a := cfg.Parent.Auth
	if a.Scheme == "" {
		return nil, nil
	}
	password, err := cfg.ParentPassword()
	if err != nil {
		return nil, err
	}
	var c proxyauth.Client
	switch a.Scheme {
	case "basic":
		c = proxyauth.NewBasic(a.User, password)
	case "ntlm":
		c = proxyauth.NewNTLM(a.Domain, a.User, password, "")
	case "negotiate":
		c, err = proxyauth.NewNegotiate(proxyauth.NegotiateOptions{
			SPN: cfg.ParentSPN(), Krb5Conf: a.Krb5Conf, Keytab: a.Keytab, CCache: a.CCache,
			User: a.User, Domain: a.Domain, Password: password,
		})
	case "sspi":
		c, err = proxyauth.NewSSPI(cfg.ParentSPN())
	default:
		// Validate refuses any other scheme; a Config built by hand may not
		// have been validated.
		err = fmt.Errorf("unknown scheme %q", a.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("parent.auth.scheme %s: %w", a.Scheme, err)
	}
	return c, nil
}
