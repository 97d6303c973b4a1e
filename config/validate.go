package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/m365tap/m365tap/internal/passhash"
)

// What each rule allows; the bad-config fixtures pin every one of them.
const (
	allowListen        = "want host:port with a port 0..65535, such as 127.0.0.1:8080"
	allowOpenRelay     = "a listen address beyond loopback needs access.allow (client CIDRs); without it the tap would be an open relay"
	allowParent        = "want http://[user:pass@]host:port, the port included"
	allowParentHTTPS   = "https parents are not supported yet; want http://[user:pass@]host:port"
	allowBypass        = "want a host name, an IP address or a pattern such as *.example.com"
	allowDNSServer     = "want IP:port such as 192.0.2.53:53 or [2001:db8::53]:53"
	allowClientName    = "want ADDRESS=NAME with an IP address and a name of 1 to 64 printable characters, such as 10.0.0.21=PC-SALES-07"
	allowDuplicatePC   = "want each address once; an earlier entry already names it"
	allowHost          = "want NAME=IP with a host name and an IP address, such as login.microsoftonline.com=127.0.0.1"
	allowPositive      = "want a duration greater than zero, such as 10s"
	allowProbeCAFile   = "want a PEM file of CA certificates, or empty for the system roots"
	allowInterval      = "want zero (no active probe) or a positive duration such as 5m"
	allowGrace         = "want zero (stop at once) or a positive duration such as 10s"
	allowCIDR          = "want a CIDR such as 192.0.2.0/24, a single IP address, or interfaces (the networks of the machine's own interfaces, and loopback)"
	allowPortsEmpty    = "want at least one port; CONNECT could reach nothing"
	allowPort          = "want a port 1..65535"
	allowUser          = "want NAME:HASH with a bcrypt or argon2id hash, such as engineer:$2y$10$... (htpasswd -nbB NAME PASSWORD) or engineer:$argon2id$v=19$m=65536,t=3,p=4$SALT$HASH (m365tap hash NAME)"
	allowArgon2        = "want $argon2id$v=19$m=KIB,t=N,p=N$SALT$HASH (or $argon2i$) with a salt of 8 bytes or more and a hash of 4 or more, in unpadded standard base64, as argon2 -e writes it"
	allowHashCost      = "want bcrypt cost 4..17, or argon2 m at most 1048576 (KiB, 1 GiB), t 1..10 and p 1..255: every login computes the hash"
	allowConns         = "want a whole number of connections, 1 or more"
	allowQueryKey      = "want a query parameter name (without &, ;, = or spaces)"
	allowFile          = "want a file path"
	allowRuleID        = "want a non-empty rule id"
	allowRuleURLs      = "want at least one URL or host pattern"
	allowTCPPorts      = "want a comma-separated list of ports 1..65535, such as 80,443"
	allowProbePath     = "want a path starting with /, such as /connecttest.txt"
	allowProbeContent  = "want the text a probe's body must contain, such as Microsoft Connect Test"
	allowLevel         = "want debug, info, warn or error"
	allowFormat        = "want json, ecs or cef"
	allowLanguage      = "want en or ja"
	allowMaxSize       = "want a size in megabytes greater than zero"
	allowMaxBackups    = "want zero (keep every rotated file) or more"
	allowMaxAge        = "want zero (no age limit) or more days"
	allowNowhere       = "want true when log.file and log.sinks are empty; otherwise events go nowhere"
	allowDuplicateHost = "want each name once; an earlier entry already maps it"
	allowDuplicateRule = "want each id once; an earlier rule already has it"
	allowSinkType      = "want stdout, file or syslog"
	allowSinkNetwork   = "want udp, tcp, tls or relp"
	allowSinkAddress   = "want host:port with a port 1..65535, such as siem.example.com:6514"
	allowSinkPath      = "want each file once; log.file or an earlier sink already writes it"
	allowOnlyFile      = "only a file sink takes a path"
	allowOnlySyslog    = "only a syslog sink takes this key"
	allowOnlyTLS       = "only a syslog sink with network tls takes this key"
	allowCertPair      = "want cert_file and key_file together"
	allowFacility      = "want kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp or local0 to local7"
	allowAppName       = "want at most 48 printable ASCII characters, no spaces"
	allowQueueSize     = "want zero (10000 events) or a positive number of events"
	allowDiskQueue     = "want a directory path"
	allowDiskQueueUDP  = "want network tcp, tls or relp with a disk queue; over udp nothing tells what arrived"
	allowDiskQueueOnce = "want each directory once; an earlier sink already queues in it"
	allowDiskQueueMax  = "want zero (1024 MB) or a positive number of megabytes"
	allowOnlyDiskQueue = "only a sink with a disk_queue takes this key"
)

// Validate checks every field and returns an errors.Join of *FieldError, one
// per problem, or nil. Load calls it; call it again after building or
// changing a Config by hand.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, value, allowed string) {
		errs = append(errs, fieldError(key, value, allowed))
	}

	if host, ok := listenHost(c.Listen); !ok {
		add("listen", c.Listen, allowListen)
	} else if !isLoopbackHost(host) && len(c.Access.Allow) == 0 {
		add("listen", c.Listen, allowOpenRelay)
	}

	if c.Parent.URL != "" {
		if allowed := checkParent(c.Parent.URL); allowed != "" {
			add("parent.url", c.Parent.URL, allowed)
		}
	} else if c.envProxy != "" {
		// Named after the variable: that is what the operator must fix.
		if allowed := checkParent(withScheme(c.envProxy)); allowed != "" {
			add(c.envProxyVar, c.envProxy, allowed)
		}
	}
	for i, p := range c.Parent.Bypass {
		if !isBypassPattern(p) {
			add(index("parent.bypass", i), p, allowBypass)
		}
	}
	c.validateParentAuth(add)

	c.validatePAC(add)
	if c.Probes.Interval < 0 {
		add("probes.interval", c.Probes.Interval.String(), allowInterval)
	}
	// The file itself is read where it is used (ProbeRoots), as
	// parent.auth.password_file is: a relative path is the working
	// directory's, which config check may not share.
	if c.Probes.CAFile != "" && strings.TrimSpace(c.Probes.CAFile) == "" {
		add("probes.ca_file", c.Probes.CAFile, allowFile)
	}

	for i, s := range c.DNS.Servers {
		if ap, err := netip.ParseAddrPort(s); err != nil || ap.Port() == 0 {
			add(index("dns.servers", i), s, allowDNSServer)
		}
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, d.String(), allowPositive)
		}
	}
	positive("dns.timeout", c.DNS.Timeout)

	seenHost := map[string]bool{}
	for i, h := range c.Hosts {
		name, _, ok := parseHost(h)
		switch {
		case !ok:
			add(index("hosts", i), h, allowHost)
		case seenHost[name]:
			// HostOverrides keeps one address per name; a second entry
			// would silently win or lose.
			add(index("hosts", i), h, allowDuplicateHost)
		default:
			seenHost[name] = true
		}
	}

	seenPC := map[netip.Addr]bool{}
	for i, n := range c.Clients.Names {
		addr, _, ok := parseClientName(n)
		switch {
		case !ok:
			add(index("clients.names", i), n, allowClientName)
		case seenPC[addr]:
			add(index("clients.names", i), n, allowDuplicatePC)
		default:
			seenPC[addr] = true
		}
	}

	positive("timeouts.connect", c.Timeouts.Connect)
	positive("timeouts.response_header", c.Timeouts.ResponseHeader)
	positive("timeouts.idle", c.Timeouts.Idle)
	positive("timeouts.read_header", c.Timeouts.ReadHeader)
	positive("timeouts.tunnel_linger", c.Timeouts.TunnelLinger)
	positive("timeouts.tunnel_idle", c.Timeouts.TunnelIdle)

	for i, a := range c.Access.Allow {
		if _, ok := parsePrefix(a); !ok && !isInterfaces(a) {
			add(index("access.allow", i), a, allowCIDR)
		}
	}
	if len(c.Access.Ports) == 0 {
		add("access.ports", "[]", allowPortsEmpty)
	}
	for i, p := range c.Access.Ports {
		if p < 1 || p > 65535 {
			add(index("access.ports", i), strconv.Itoa(p), allowPort)
		}
	}
	for i, u := range c.Access.Users {
		if _, _, err := c.userHash(u); err != nil {
			// The hash is not the password, but it is still not for logs:
			// only an Argon2 string's parameters are shown, which say what
			// was asked for.
			name, hash, _ := strings.Cut(u, ":")
			shown := passwordMask
			if h := passhash.Header(hash); h != "" {
				shown = h + "$" + passwordMask
			}
			allowed := allowUser
			switch {
			case errors.Is(err, passhash.ErrCost):
				allowed = allowHashCost
			case errors.Is(err, passhash.ErrMalformed):
				allowed = allowArgon2
			}
			add(index("access.users", i), name+":"+shown, allowed)
		}
	}
	if c.Access.MaxConns < 1 {
		add("access.max_conns", strconv.Itoa(c.Access.MaxConns), allowConns)
	}
	if c.Access.MaxConnsPerClient < 1 {
		add("access.max_conns_per_client", strconv.Itoa(c.Access.MaxConnsPerClient), allowConns)
	}
	for i, k := range c.Access.RedactQuery {
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, "&;= ") {
			add(index("access.redact_query", i), k, allowQueryKey)
		}
	}

	for i, f := range c.Rules.Files {
		if strings.TrimSpace(f) == "" {
			add(index("rules.files", i), f, allowFile)
		}
	}
	seenRule := map[string]bool{}
	for i, r := range c.Rules.User {
		key := index("rules.user", i)
		switch {
		case r.ID == "":
			add(key+".id", r.ID, allowRuleID)
		case seenRule[r.ID]:
			add(key+".id", r.ID, allowDuplicateRule)
		default:
			seenRule[r.ID] = true
		}
		if len(r.URLs) == 0 {
			add(key+".urls", "[]", allowRuleURLs)
		}
		if r.TCPPorts != "" && !isPortList(r.TCPPorts) {
			add(key+".tcp_ports", r.TCPPorts, allowTCPPorts)
		}
		if r.Probe {
			if !strings.HasPrefix(r.ProbePath, "/") {
				add(key+".probe_path", r.ProbePath, allowProbePath)
			}
			if r.ProbeContent == "" {
				add(key+".probe_content", r.ProbeContent, allowProbeContent)
			}
		}
	}

	if !isLevel(c.Log.Level) {
		add("log.level", c.Log.Level, allowLevel)
	}
	if !isFormat(c.Log.Format) {
		add("log.format", c.Log.Format, allowFormat)
	}
	if !c.Log.Stdout && c.Log.File == "" && len(c.Log.Sinks) == 0 {
		add("log.stdout", "false", allowNowhere)
	}
	if c.Log.MaxSizeMB <= 0 {
		add("log.max_size_mb", strconv.Itoa(c.Log.MaxSizeMB), allowMaxSize)
	}
	if c.Log.MaxBackups < 0 {
		add("log.max_backups", strconv.Itoa(c.Log.MaxBackups), allowMaxBackups)
	}
	if c.Log.MaxAgeDays < 0 {
		add("log.max_age_days", strconv.Itoa(c.Log.MaxAgeDays), allowMaxAge)
	}
	switch c.Log.Language {
	case "en", "ja":
	default:
		add("log.language", c.Log.Language, allowLanguage)
	}
	c.validateSinks(add)
	positive("log.drain_timeout", c.Log.DrainTimeout)

	if c.Shutdown.Grace < 0 {
		add("shutdown.grace", c.Shutdown.Grace.String(), allowGrace)
	}
	return errors.Join(errs...)
}

// validateSinks checks log.sinks: each sink's type, the keys its type
// needs, and that it sets no key its type ignores (a syslog address on a
// file sink is a mistake, not a preference).
func (c *Config) validateSinks(add func(key, value, allowed string)) {
	paths := map[string]bool{}
	queues := map[string]bool{}
	if c.Log.File != "" {
		paths[filepath.Clean(c.Log.File)] = true
	}
	for i, sk := range c.Log.Sinks {
		key := index("log.sinks", i)
		switch sk.Type {
		case "stdout", "file", "syslog":
		default:
			add(key+".type", sk.Type, allowSinkType)
		}
		if sk.Format != "" && !isFormat(sk.Format) {
			add(key+".format", sk.Format, allowFormat)
		}
		if sk.Level != "" && !isLevel(sk.Level) {
			add(key+".level", sk.Level, allowLevel)
		}

		switch {
		case sk.Type != "file":
			if sk.Path != "" {
				add(key+".path", sk.Path, allowOnlyFile)
			}
		case strings.TrimSpace(sk.Path) == "":
			add(key+".path", sk.Path, allowFile)
		case paths[filepath.Clean(sk.Path)]:
			// Two rotating writers on one file would interleave and
			// rotate each other's lines away.
			add(key+".path", sk.Path, allowSinkPath)
		default:
			paths[filepath.Clean(sk.Path)] = true
		}

		syslogKeys := []struct{ name, value string }{
			{"network", sk.Network}, {"address", sk.Address}, {"ca_file", sk.CAFile},
			{"cert_file", sk.CertFile}, {"key_file", sk.KeyFile}, {"server_name", sk.ServerName},
			{"facility", sk.Facility}, {"app_name", sk.AppName}, {"disk_queue", sk.DiskQueue},
		}
		if sk.Type != "syslog" {
			for _, k := range syslogKeys {
				if k.value != "" {
					add(key+"."+k.name, k.value, allowOnlySyslog)
				}
			}
			if sk.QueueSize != 0 {
				add(key+".queue_size", strconv.Itoa(sk.QueueSize), allowOnlySyslog)
			}
			if sk.DiskQueueMaxMB != 0 {
				add(key+".disk_queue_max_mb", strconv.Itoa(sk.DiskQueueMaxMB), allowOnlySyslog)
			}
			continue
		}
		switch sk.Network {
		case "udp", "tcp", "tls", "relp":
		default:
			add(key+".network", sk.Network, allowSinkNetwork)
		}
		if host, port, err := net.SplitHostPort(sk.Address); err != nil || !isPort(port, 1) || !(isIP(host) || isHostName(host)) {
			add(key+".address", sk.Address, allowSinkAddress)
		}
		if sk.Network != "tls" {
			for _, k := range syslogKeys[2:6] {
				if k.value != "" {
					add(key+"."+k.name, k.value, allowOnlyTLS)
				}
			}
		} else {
			switch {
			case sk.CertFile != "" && sk.KeyFile == "":
				add(key+".key_file", sk.KeyFile, allowCertPair)
			case sk.CertFile == "" && sk.KeyFile != "":
				add(key+".cert_file", sk.CertFile, allowCertPair)
			}
		}
		if _, ok := SyslogFacilities[sk.Facility]; sk.Facility != "" && !ok {
			add(key+".facility", sk.Facility, allowFacility)
		}
		if sk.AppName != "" && !isPrintableASCII(sk.AppName, 48) {
			add(key+".app_name", sk.AppName, allowAppName)
		}
		if sk.QueueSize < 0 {
			add(key+".queue_size", strconv.Itoa(sk.QueueSize), allowQueueSize)
		}
		c.validateDiskQueue(key, sk, queues, add)
	}
}

// validateDiskQueue checks a syslog sink's disk_queue keys: a directory
// used by one sink only (two writers would corrupt it; a second tap is
// refused at start by the queue's lock), on a transport that acknowledges.
func (c *Config) validateDiskQueue(key string, sk Sink, queues map[string]bool, add func(key, value, allowed string)) {
	if sk.DiskQueueMaxMB < 0 {
		add(key+".disk_queue_max_mb", strconv.Itoa(sk.DiskQueueMaxMB), allowDiskQueueMax)
	}
	if sk.DiskQueue == "" {
		if sk.DiskQueueMaxMB != 0 {
			add(key+".disk_queue_max_mb", strconv.Itoa(sk.DiskQueueMaxMB), allowOnlyDiskQueue)
		}
		return
	}
	dir := filepath.Clean(sk.DiskQueue)
	switch {
	case strings.TrimSpace(sk.DiskQueue) == "":
		add(key+".disk_queue", sk.DiskQueue, allowDiskQueue)
	case sk.Network == "udp":
		add(key+".disk_queue", sk.DiskQueue, allowDiskQueueUDP)
	case queues[dir]:
		add(key+".disk_queue", sk.DiskQueue, allowDiskQueueOnce)
	default:
		queues[dir] = true
	}
}

func isFormat(f string) bool { return f == "json" || f == "ecs" || f == "cef" }

func isLevel(l string) bool {
	switch l {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

// isPrintableASCII is what RFC 5424 allows in a header field: characters
// 33..126, at most max of them.
func isPrintableASCII(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func index(key string, i int) string {
	return fmt.Sprintf("%s[%d]", key, i)
}

// listenHost splits a listen address, insisting on a numeric port. Port 0
// is allowed: it asks the kernel for a free port, which tests rely on.
func listenHost(addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !isPort(port, 0) {
		return "", false
	}
	if host != "" && !isIP(host) && !isHostName(host) {
		return "", false
	}
	return host, true
}

// isLoopbackHost is deliberately narrow: an empty host listens on every
// interface, and a name other than localhost may resolve anywhere.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// checkParent returns what is allowed if raw is not a usable parent URL, or "".
func checkParent(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return allowParent
	}
	if u.Scheme == "https" {
		return allowParentHTTPS
	}
	if u.Scheme != "http" || u.Opaque != "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || !isPort(u.Port(), 1) {
		return allowParent
	}
	if h := u.Hostname(); !isIP(h) && !isHostName(h) {
		return allowParent
	}
	return ""
}

// withScheme treats a scheme-less proxy variable as http, as Go's
// net/http/httpproxy does: HTTPS_PROXY=proxy:3128 is common.
func withScheme(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "http://" + s
}

func isPort(s string, min uint64) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n >= min
}

func isPortList(s string) bool {
	for p := range strings.SplitSeq(s, ",") {
		if !isPort(strings.TrimSpace(p), 1) {
			return false
		}
	}
	return true
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// isHostName accepts DNS names as they are used, not only as RFC 1123 allows:
// underscores appear in real names, and a trailing dot is the root.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func isBypassPattern(p string) bool {
	if suffix, ok := strings.CutPrefix(p, "*."); ok {
		return isHostName(suffix)
	}
	return isHostName(p) || isIP(p)
}

// parseHost splits a hosts entry into its normalised name and address.
func parseHost(entry string) (string, netip.Addr, bool) {
	name, ip, ok := strings.Cut(entry, "=")
	if !ok || !isHostName(name) {
		return "", netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "", netip.Addr{}, false
	}
	return strings.ToLower(strings.TrimSuffix(name, ".")), addr, true
}

// parseClientName splits a clients.names entry into the PC's address (an
// IPv4-mapped IPv6 address unmapped, as events show it) and its name. The
// name is shown in a terminal and in reports: control characters and
// other unprintable runes are refused rather than escaped later.
func parseClientName(entry string) (netip.Addr, string, bool) {
	ip, name, ok := strings.Cut(entry, "=")
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	name = strings.TrimSpace(name)
	if !ok || err != nil || addr.Zone() != "" || name == "" || utf8.RuneCountInString(name) > 64 || !utf8.ValidString(name) {
		return netip.Addr{}, "", false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return netip.Addr{}, "", false
		}
	}
	return addr.Unmap(), name, true
}

// parsePrefix reads an access.allow entry; a bare address is a one-host prefix.
func parsePrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}
