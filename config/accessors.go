package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"strings"

	"fmt"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/m365tap/m365tap/internal/passhash"
)

// Source is the file Load read, or "" when the config came from defaults,
// the environment and flags only.
func (c *Config) Source() string {
	return c.source
}

// ParentURL is the parent proxy to chain through, or nil for direct routes.
// parent.url wins; with parent.from_environment it falls back to
// HTTPS_PROXY, https_proxy, HTTP_PROXY, http_proxy from the environment
// given to Load. A URL that does not parse also gives nil, which Validate
// has already reported.
func (c *Config) ParentURL() *url.URL {
	raw := c.Parent.URL
	if raw == "" && c.envProxy != "" {
		raw = withScheme(c.envProxy)
	}
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	return u
}

// ParentSource names where ParentURL came from: "parent.url", the
// environment variable, or "" when there is no parent. Events and the
// startup log use it to explain a route the config file does not show.
func (c *Config) ParentSource() string {
	switch {
	case c.Parent.URL != "":
		return "parent.url"
	case c.envProxy != "":
		return c.envProxyVar
	}
	return ""
}

// HostOverrides returns the hosts entries keyed by lower-cased name without
// a trailing dot, the form a resolver should look up. Malformed entries,
// which Validate reports, are left out.
func (c *Config) HostOverrides() map[string]netip.Addr {
	m := make(map[string]netip.Addr, len(c.Hosts))
	for _, h := range c.Hosts {
		if name, addr, ok := parseHost(h); ok {
			if _, dup := m[name]; !dup {
				m[name] = addr
			}
		}
	}
	return m
}

// ClientNames returns clients.names as the PC's address (unmapped, as
// events show it) to its name; nil when empty. Malformed entries, which
// Validate reports, are left out.
func (c *Config) ClientNames() map[string]string {
	if len(c.Clients.Names) == 0 {
		return nil
	}
	m := make(map[string]string, len(c.Clients.Names))
	for _, n := range c.Clients.Names {
		if addr, name, ok := parseClientName(n); ok {
			m[addr.String()] = name
		}
	}
	return m
}

// ProbeRoots are the CA certificates of probes.ca_file, read now, for the
// active probe's TLS checks; nil (the system roots) when the key is empty.
// A file that cannot be read or holds no PEM certificate is a *FieldError
// naming the key.
func (c *Config) ProbeRoots() (*x509.CertPool, error) {
	if c.Probes.CAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.Probes.CAFile)
	if err != nil {
		// The reason without the path, which the error names already.
		reason := err.Error()
		if inner := errors.Unwrap(err); inner != nil {
			reason = inner.Error()
		}
		return nil, fieldError("probes.ca_file", c.Probes.CAFile, allowProbeCAFile+": "+reason)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fieldError("probes.ca_file", c.Probes.CAFile, allowProbeCAFile+": no PEM certificate in it")
	}
	return pool, nil
}

// AllowInterfaces reports whether access.allow holds the entry
// "interfaces": admit the networks of the machine's own interfaces, read
// when the tap starts, and loopback of both families (the container
// image's default: its bridge gateway is on its interface's network).
func (c *Config) AllowInterfaces() bool {
	return slices.ContainsFunc(c.Access.Allow, isInterfaces)
}

// isInterfaces reports whether an access.allow entry is the keyword
// "interfaces" (any case).
func isInterfaces(s string) bool {
	return strings.EqualFold(strings.TrimSpace(s), AllowInterfacesEntry)
}

// AllowInterfacesEntry is the access.allow entry that stands for the
// networks of the machine's own interfaces.
const AllowInterfacesEntry = "interfaces"

// AllowPrefixes returns access.allow as masked prefixes, a bare address
// becoming a /32 or /128; the "interfaces" entry is not among them (see
// AllowInterfaces). Nil means no prefix was given: with a loopback
// listener and no "interfaces", admit loopback clients only.
func (c *Config) AllowPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range c.Access.Allow {
		if p, ok := parsePrefix(a); ok {
			out = append(out, p)
		}
	}
	return out
}

// Redacted returns a deep copy safe to print or log: the parent proxy
// password, in parent.url or in the proxy variable taken from the
// environment, reads xxxxx.
func (c *Config) Redacted() Config {
	r := *c
	r.Parent.URL = maskPassword(c.Parent.URL)
	r.envProxy = maskPassword(c.envProxy)
	r.Parent.Bypass = slices.Clone(c.Parent.Bypass)
	r.DNS.Servers = slices.Clone(c.DNS.Servers)
	r.Hosts = slices.Clone(c.Hosts)
	r.Clients.Names = slices.Clone(c.Clients.Names)
	r.Access.Allow = slices.Clone(c.Access.Allow)
	r.Access.Ports = slices.Clone(c.Access.Ports)
	r.Rules.Files = slices.Clone(c.Rules.Files)
	r.Log.Sinks = slices.Clone(c.Log.Sinks)
	r.Rules.User = slices.Clone(c.Rules.User)
	for i := range r.Rules.User {
		r.Rules.User[i].URLs = slices.Clone(r.Rules.User[i].URLs)
	}
	return r
}

// YAML renders the effective config with the same keys Load reads, secrets
// masked, so that the output can be saved and loaded again. Every key is
// written, defaults included, and durations read as 10s rather than
// nanoseconds.
func (c *Config) YAML() ([]byte, error) {
	r := c.Redacted()
	doc := toNode(reflect.ValueOf(r))
	if r.envProxy != "" {
		// parent.url stays empty, as configured; the comment shows the
		// parent actually in use and where it came from.
		parent := mappingValue(doc, "parent")
		if u := mappingValue(parent, "url"); u != nil {
			u.LineComment = "from " + r.envProxyVar + ": " + strconv.Quote(r.envProxy)
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("config: render YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: render YAML: %w", err)
	}
	return b.Bytes(), nil
}

// toNode builds the YAML tree by hand rather than with yaml tags: the keys
// must be the mapstructure keys Load reads, in field order, and
// time.Duration must print as text.
func toNode(v reflect.Value) *yaml.Node {
	if v.Type() == durationType {
		return scalar("!!str", time.Duration(v.Int()).String())
	}
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			n.Content = append(n.Content, scalar("!!str", f.Tag.Get("mapstructure")), toNode(v.Field(i)))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() == 0 {
			// Written as [] so that the key is visibly present and empty.
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			n.Content = append(n.Content, toNode(v.Index(i)))
		}
		return n
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case reflect.Int:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	}
	return scalar("!!str", v.String())
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// userHash splits an access.users entry and checks its hash: bcrypt ($2a$,
// $2b$, $2y$, as htpasswd -B writes it) or an Argon2id/Argon2i PHC string
// (as the argon2 command writes it with -e), within passhash's cost limits.
// The error wraps passhash's sentinels.
func (c *Config) userHash(entry string) (string, []byte, error) {
	name, hash, ok := strings.Cut(entry, ":")
	if !ok || name == "" {
		return "", nil, errors.New("want NAME:HASH")
	}
	if _, err := passhash.Parse(hash); err != nil {
		return "", nil, err
	}
	return name, []byte(hash), nil
}

// Users returns access.users as name to hash text (bcrypt or Argon2 PHC);
// nil when empty.
func (c *Config) Users() map[string][]byte {
	if len(c.Access.Users) == 0 {
		return nil
	}
	m := make(map[string][]byte, len(c.Access.Users))
	for _, u := range c.Access.Users {
		if name, hash, err := c.userHash(u); err == nil {
			m[name] = hash
		}
	}
	return m
}
