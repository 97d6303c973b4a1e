package config

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strings"
)

// ParentAuth is how the tap authenticates to the parent itself: always for
// its own traffic (m365tap probe, probes.interval), and for client
// exchanges only with Clients.
type ParentAuth struct {
	// Scheme is "" (none), basic, ntlm (NTLMv2), negotiate (Kerberos with
	// Keytab or CCache; NTLM inside Negotiate with User and a password) or
	// sspi (the logged-on Windows user; Windows only).
	Scheme string `mapstructure:"scheme"`
	// User is the account name (basic, ntlm, the negotiate NTLM fallback,
	// and the keytab's principal, "name" or "name@REALM").
	User string `mapstructure:"user"`
	// Domain is the NetBIOS domain for NTLM, such as CORP; empty for an
	// account of the proxy's own machine.
	Domain string `mapstructure:"domain"`
	// PasswordFile is a file whose first line is the password;
	// PasswordEnv is the name of an environment variable holding it. One of
	// the two, never both: a password is never given on the command line
	// or in this file, where ps and config print would show it.
	PasswordFile string `mapstructure:"password_file"`
	PasswordEnv  string `mapstructure:"password_env"`
	// Krb5Conf is the krb5.conf for negotiate; empty means $KRB5_CONFIG,
	// else /etc/krb5.conf.
	Krb5Conf string `mapstructure:"krb5_conf"`
	// Keytab is a keytab with the tap's own key, for negotiate.
	Keytab string `mapstructure:"keytab"`
	// CCache is a credential cache (kinit's) for negotiate, used when
	// Keytab is empty.
	CCache string `mapstructure:"ccache"`
	// SPN is the parent's Kerberos service name; empty means
	// HTTP/<parent host as in parent.url>.
	SPN string `mapstructure:"spn"`
	// Clients also uses these credentials for client exchanges that carry
	// none of their own (their events say parent_auth: tap). Off: the tap
	// never authenticates on a client's behalf, so a client the parent
	// refuses is seen refused.
	Clients bool `mapstructure:"clients"`
	// NCSI, with Clients, also authenticates NCSI probe requests. Off:
	// they go as NCSI sends them, without credentials, so a parent that
	// demands authentication shows as ncsi-no-internet, as on the PC.
	NCSI bool `mapstructure:"ncsi"`
}

// What each parent.auth rule allows; the bad-config fixtures pin every one.
const (
	allowAuthScheme     = "want \"\" (none), basic, ntlm, negotiate or sspi"
	allowAuthNoParent   = "the tap's own credentials are for a parent: set parent.url (or parent.from_environment), or leave parent.auth.scheme empty"
	allowAuthUser       = "want the account name; basic and ntlm need one"
	allowAuthPassword   = "want parent.auth.password_file (a file holding the password) or parent.auth.password_env (the name of a variable holding it); basic and ntlm need one"
	allowAuthBothPw     = "want parent.auth.password_file or parent.auth.password_env, not both"
	allowAuthPwFile     = "want a readable file whose first line is the password"
	allowAuthPwEnv      = "want the name of an environment variable that is set, not empty, in the tap's environment"
	allowAuthNegotiate  = "negotiate needs parent.auth.keytab or parent.auth.ccache for Kerberos, or parent.auth.user with a password for NTLM"
	allowAuthSSPI       = "sspi (the logged-on Windows user) exists only on Windows; elsewhere use negotiate with parent.auth.keytab or parent.auth.ccache"
	allowAuthKerberos   = "only parent.auth.scheme negotiate takes this key"
	allowAuthSPNScheme  = "only parent.auth.scheme negotiate or sspi takes this key"
	allowAuthNTLMKey    = "only parent.auth.scheme basic, ntlm or negotiate takes this key"
	allowAuthDomain     = "only parent.auth.scheme ntlm or negotiate takes this key"
	allowAuthSPN        = "want SERVICE/host such as HTTP/proxy.corp.example, without spaces"
	allowAuthClients    = "parent.auth.clients lends the tap's own credentials: set parent.auth.scheme, or user:pass in parent.url"
	allowAuthNCSI       = "parent.auth.ncsi needs parent.auth.clients: true; NCSI probe requests are client exchanges"
	allowUsersAndParent = "a client sends one Proxy-Authorization; with a parent it belongs to the parent and is relayed unchanged, so the tap cannot also check it against access.users. Set parent.auth.clients: true (the tap checks its clients and authenticates to the parent itself) or remove access.users"
)

// captureEnv keeps, from the environment given to Load, the password of
// the variable parent.auth.password_env names.
func (c *Config) captureEnv(env []string) {
	name := c.Parent.Auth.PasswordEnv
	if name == "" {
		return
	}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			c.envPassword = &v
		}
	}
}

// validateParentAuth checks parent.auth and the keys that depend on it.
func (c *Config) validateParentAuth(add func(key, value, allowed string)) {
	a := c.Parent.Auth
	hasParent := c.Parent.URL != "" || c.envProxy != ""
	switch a.Scheme {
	case "", "basic", "ntlm", "negotiate":
	case "sspi":
		if runtime.GOOS != "windows" {
			add("parent.auth.scheme", a.Scheme, allowAuthSSPI)
		}
	default:
		add("parent.auth.scheme", a.Scheme, allowAuthScheme)
		return
	}
	if a.Scheme != "" && !hasParent {
		add("parent.auth.scheme", a.Scheme, allowAuthNoParent)
	}

	pwKeys := a.PasswordFile != "" || a.PasswordEnv != ""
	switch a.Scheme {
	case "basic", "ntlm":
		if a.User == "" {
			add("parent.auth.user", a.User, allowAuthUser)
		}
		if !pwKeys {
			add("parent.auth.password_file", a.PasswordFile, allowAuthPassword)
		}
	case "negotiate":
		if a.Keytab == "" && a.CCache == "" && (a.User == "" || !pwKeys) {
			add("parent.auth.scheme", a.Scheme, allowAuthNegotiate)
		}
	}
	// The file and the variable themselves are read at start
	// (ParentPassword), not here: config check runs without the tap's
	// environment and often on another machine, as for every other file key.
	if a.PasswordFile != "" && a.PasswordEnv != "" {
		add("parent.auth.password_env", a.PasswordEnv, allowAuthBothPw)
	}

	onlyFor := func(key, value, allowed string, schemes ...string) {
		if value == "" {
			return
		}
		for _, s := range schemes {
			if a.Scheme == s {
				return
			}
		}
		add(key, value, allowed)
	}
	onlyFor("parent.auth.user", a.User, allowAuthNTLMKey, "basic", "ntlm", "negotiate")
	onlyFor("parent.auth.password_file", a.PasswordFile, allowAuthNTLMKey, "basic", "ntlm", "negotiate")
	onlyFor("parent.auth.password_env", a.PasswordEnv, allowAuthNTLMKey, "basic", "ntlm", "negotiate")
	onlyFor("parent.auth.domain", a.Domain, allowAuthDomain, "ntlm", "negotiate")
	onlyFor("parent.auth.krb5_conf", a.Krb5Conf, allowAuthKerberos, "negotiate")
	onlyFor("parent.auth.keytab", a.Keytab, allowAuthKerberos, "negotiate")
	onlyFor("parent.auth.ccache", a.CCache, allowAuthKerberos, "negotiate")
	onlyFor("parent.auth.spn", a.SPN, allowAuthSPNScheme, "negotiate", "sspi")
	if a.SPN != "" {
		svc, host, ok := strings.Cut(a.SPN, "/")
		if !ok || svc == "" || host == "" || strings.ContainsAny(a.SPN, " \t\r\n") {
			add("parent.auth.spn", a.SPN, allowAuthSPN)
		}
	}

	lends := a.Scheme != "" || (c.ParentURL() != nil && c.ParentURL().User != nil)
	if a.Clients && !lends {
		add("parent.auth.clients", "true", allowAuthClients)
	}
	if a.NCSI && !a.Clients {
		add("parent.auth.ncsi", "true", allowAuthNCSI)
	}
	if len(c.Access.Users) > 0 && hasParent && !a.Clients {
		names := make([]string, 0, len(c.Access.Users))
		for _, u := range c.Access.Users {
			name, _, _ := strings.Cut(u, ":")
			names = append(names, name)
		}
		add("access.users", strings.Join(names, ","), allowUsersAndParent)
	}
}

// parentPassword returns parent.auth's password from its file or
// variable; "" when neither is set. When it cannot be had, it returns
// instead the key, value and allowed text of the problem.
func (c *Config) parentPassword() (password, key, value, allowed string) {
	a := c.Parent.Auth
	switch {
	case a.PasswordFile != "":
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			// The path only: an error text could quote the file.
			reason := err.Error()
			if inner := errors.Unwrap(err); inner != nil {
				reason = inner.Error()
			}
			return "", "parent.auth.password_file", a.PasswordFile, allowAuthPwFile + ": " + reason
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return "", "parent.auth.password_file", a.PasswordFile, allowAuthPwFile + ": the first line is empty"
		}
		return string(line), "", "", ""
	case a.PasswordEnv != "":
		if c.envPassword == nil || *c.envPassword == "" {
			return "", "parent.auth.password_env", a.PasswordEnv, allowAuthPwEnv
		}
		return *c.envPassword, "", "", ""
	}
	return "", "", "", ""
}

// ParentPassword is the password of parent.auth, read from
// parent.auth.password_file now or taken from the variable
// parent.auth.password_env names as Load found it; "" when neither is set.
// A file that cannot be read or whose first line is empty, or a variable
// that is unset or empty, is a *FieldError naming the key.
func (c *Config) ParentPassword() (string, error) {
	pw, key, value, allowed := c.parentPassword()
	if allowed != "" {
		return "", fieldError(key, value, allowed)
	}
	return pw, nil
}

// ParentSPN is the parent's Kerberos service name: parent.auth.spn, or
// HTTP/<parent host> as parent.url (or the environment) names it, the name
// a client derives; "" without a parent.
func (c *Config) ParentSPN() string {
	if c.Parent.Auth.SPN != "" {
		return c.Parent.Auth.SPN
	}
	if u := c.ParentURL(); u != nil && u.Hostname() != "" {
		return "HTTP/" + u.Hostname()
	}
	return ""
}
