package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// secret is the parent proxy password used by every fixture that has one.
const secret = "s3cret-pw"

// noEnv keeps the test's own environment (HTTPS_PROXY, M365TAP_*) out.
var noEnv = []string{}

func load(t *testing.T, opts LoadOptions) (*Config, error) {
	t.Helper()
	if opts.Env == nil {
		opts.Env = noEnv
	}
	if opts.Dir == "" && opts.File == "" {
		opts.Dir = t.TempDir() // so a stray ./m365tap.yaml is never read
	}
	return Load(opts)
}

func mustLoad(t *testing.T, opts LoadOptions) *Config {
	t.Helper()
	c, err := load(t, opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaultsLoadWithoutFileOrEnv(t *testing.T) {
	c := mustLoad(t, LoadOptions{})
	want := Default()
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load() =\n%+v\nwant Default() =\n%+v", *c, want)
	}
	if c.Source() != "" {
		t.Errorf("Source() = %q, want none", c.Source())
	}
	if err := want.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestDefaultFileInDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DefaultFile)
	if err := os.WriteFile(path, []byte("log:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, LoadOptions{Dir: dir})
	if c.Log.Level != "warn" || c.Source() != path {
		t.Errorf("level %q from %q, want warn from %q", c.Log.Level, c.Source(), path)
	}
}

func TestNamedFileMissing(t *testing.T) {
	_, err := load(t, LoadOptions{File: "testdata/missing.yaml"})
	want := "config: open testdata/missing.yaml: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestGoodFixtureSetsEveryKey(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml"})
	want := Config{
		Listen: "0.0.0.0:3128",
		Parent: Parent{
			URL:             "http://ops:" + secret + "@proxy.example.com:8080",
			Bypass:          []string{"intranet.example.com", "*.corp.example.com", "192.0.2.10"},
			FromEnvironment: true,
			PAC:             "http://wpad.corp.example.com/proxy.pac",
			Auth: ParentAuth{
				Scheme: "negotiate", User: "tap-svc", Domain: "CORP", PasswordFile: "testdata/parent-password.txt",
				Krb5Conf: "/etc/m365tap/krb5.conf", Keytab: "/etc/m365tap/tap.keytab", CCache: "/tmp/krb5cc_m365tap",
				SPN: "HTTP/proxy.corp.example.com", Clients: true, NCSI: true,
			},
		},
		PAC:    PAC{MyIP: "192.0.2.15", Timezone: "Asia/Tokyo", Failover: true, EvalTimeout: 500 * time.Millisecond, Refresh: time.Hour},
		Probes: Probes{Direct: true, Interval: 5 * time.Minute, CAFile: "testdata/probe-ca.pem"},
		DNS:    DNS{Servers: []string{"192.0.2.53:53", "[2001:db8::53]:53"}, Timeout: 2 * time.Second},
		Hosts:  []string{"login.microsoftonline.com=127.0.0.1", "WWW.MSFTCONNECTTEST.COM.=::1"},
		Timeouts: Timeouts{
			Connect:        3 * time.Second,
			ResponseHeader: 20 * time.Second,
			Idle:           2 * time.Minute,
			ReadHeader:     4 * time.Second,
			TunnelLinger:   15 * time.Second,
			TunnelIdle:     20 * time.Minute,
		},
		Network: Network{ExpressRoute: true},
		Clients: Clients{Names: []string{"10.0.0.21=PC-SALES-07", "2001:db8::21=Kiosk 2 (lobby)"}},
		Access: Access{
			Allow: []string{"192.0.2.0/24", "2001:db8::/32", "198.51.100.7"},
			Ports: []int{443, 8443},
			Users: []string{"engineer:$2a$04$/SZbzX7XyTtjHGtGkVgQQuBfH/qhqh381sXeHBwtY.C02ie/a3iZS",
				"analyst:$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs"},
			MaxConns:          100,
			MaxConnsPerClient: 10,
			RedactQuery:       []string{"ticket"},
		},
		Rules: Rules{
			Files:     []string{"/etc/m365tap/rules.yaml"},
			Catalogue: "/var/lib/m365tap/endpoints.json",
			User: []UserRule{
				{
					ID:           "intranet",
					ServiceArea:  "Custom",
					URLs:         []string{"intranet.example.com", "*.intranet.example.com"},
					TCPPorts:     "80, 443",
					Required:     true,
					ExpressRoute: true,
					Category:     "Default",
					Notes:        "Line-of-business site behind the same proxy",
				},
				{
					ID:           "9001",
					URLs:         []string{"probe.example.com"},
					TCPPorts:     "80",
					Probe:        true,
					ProbePath:    "/connecttest.txt",
					ProbeContent: "Microsoft Connect Test",
				},
			},
		},
		Log: Log{
			Level:      "debug",
			Format:     "json",
			Stdout:     false,
			File:       "/var/log/m365tap/events.json",
			MaxSizeMB:  50,
			MaxBackups: 0,
			MaxAgeDays: 30,
			Compress:   false,
			Language:   "ja",
			Users:      true,
			Sinks: []Sink{
				{Type: "file", Format: "ecs", Level: "info", Path: "/var/log/m365tap/events.ecs.json"},
				{
					Type: "syslog", Format: "cef", Level: "warn", Network: "tls", Address: "siem.example.com:6514",
					CAFile: "/etc/m365tap/siem-ca.pem", CertFile: "/etc/m365tap/client.pem", KeyFile: "/etc/m365tap/client-key.pem",
					ServerName: "collector.example.com", Facility: "local3", AppName: "tap-pc042", QueueSize: 50000,
				},
			},
			DrainTimeout: 2 * time.Second,
		},
		Shutdown: Shutdown{Grace: 0},
		source:   "testdata/good.yaml",
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load(good.yaml) =\n%+v\nwant\n%+v", *c, want)
	}

	// good.yaml must really exercise every key: each differs from its default.
	def := leaves(reflect.ValueOf(Default()), "")
	got := leaves(reflect.ValueOf(*c), "")
	for i, l := range got {
		// parent.auth.password_env excludes password_file; TestParentPassword sets it.
		if reflect.DeepEqual(l.val.Interface(), def[i].val.Interface()) && l.key != "log.format" && l.key != "parent.auth.password_env" {
			t.Errorf("good.yaml leaves %s at its default %v", l.key, l.val.Interface())
		}
	}
}

func TestExampleFileDocumentsEveryKeyAtItsDefault(t *testing.T) {
	const path = "../m365tap.example.yaml"
	c := mustLoad(t, LoadOptions{File: path})
	want := Default()
	want.source = path
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("example loads as\n%+v\nwant the defaults\n%+v", *c, want)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves(reflect.ValueOf(Default()), "") {
		if !hasKey(doc, l.key) {
			t.Errorf("example does not set %s", l.key)
		}
	}
}

// TestExampleSinksAreValid loads the commented log.sinks example of the
// example file as a config of its own: it must hold every key of a sink
// and load without error.
func TestExampleSinksAreValid(t *testing.T) {
	b, err := os.ReadFile("../m365tap.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.TrimSpace(line) == "# sinks:":
			in = true
		case in && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			in = false
		}
		if in {
			block = append(block, "  "+strings.TrimPrefix(strings.TrimSpace(line), "# "))
		}
	}
	if len(block) == 0 {
		t.Fatal("no commented sinks: block in the example")
	}
	file := filepath.Join(t.TempDir(), "sinks.yaml")
	if err := os.WriteFile(file, []byte("log:\n"+strings.Join(block, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, LoadOptions{File: file})
	if len(c.Log.Sinks) == 0 {
		t.Fatalf("the example's sinks did not load:\n%s", strings.Join(block, "\n"))
	}
	text := strings.Join(block, "\n")
	st := reflect.TypeFor[Sink]()
	for i := range st.NumField() {
		if key := st.Field(i).Tag.Get("mapstructure"); !strings.Contains(text, " "+key+":") {
			t.Errorf("the example's sinks do not show %s", key)
		}
	}
}

func hasKey(m map[string]any, key string) bool {
	head, rest, nested := strings.Cut(key, ".")
	v, ok := m[head]
	if !ok || !nested {
		return ok
	}
	sub, ok := v.(map[string]any)
	return ok && hasKey(sub, rest)
}

func TestEnvReachesKeysNoFileSets(t *testing.T) {
	c := mustLoad(t, LoadOptions{Env: []string{
		"M365TAP_PARENT_URL=http://proxy.example.com:3128",
		"M365TAP_TIMEOUTS_CONNECT=7s",
		"M365TAP_TIMEOUTS_RESPONSE_HEADER=45s",
		"M365TAP_DNS_SERVERS=127.0.0.1:53,127.0.0.2:53",
		"M365TAP_ACCESS_PORTS=443, 8443",
		"M365TAP_LOG_STDOUT=false",
		"M365TAP_LOG_FILE=/tmp/events.json",
		"M365TAP_LOG_MAX_BACKUPS=2",
		// Kubernetes sets these for a Service named m365tap; they are not ours.
		"M365TAP_PORT=tcp://10.0.0.1:8080",
		"M365TAP_SERVICE_HOST=10.0.0.1",
	}})
	want := Default()
	want.Parent.URL = "http://proxy.example.com:3128"
	want.Timeouts.Connect = 7 * time.Second
	want.Timeouts.ResponseHeader = 45 * time.Second
	want.DNS.Servers = []string{"127.0.0.1:53", "127.0.0.2:53"}
	want.Access.Ports = []int{443, 8443}
	want.Log.Stdout = false
	want.Log.File = "/tmp/events.json"
	want.Log.MaxBackups = 2
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load(env) =\n%+v\nwant\n%+v", *c, want)
	}
}

func TestEnvEmptyListClearsFile(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml", Env: []string{"M365TAP_PARENT_BYPASS="}})
	if len(c.Parent.Bypass) != 0 {
		t.Errorf("bypass = %q, want empty", c.Parent.Bypass)
	}
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tap.yaml")
	err := os.WriteFile(file, []byte(`
listen: 127.0.0.1:1001
log:
  level: warn
  language: ja
dns:
  servers: [127.0.0.1:5301]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"M365TAP_LISTEN=127.0.0.1:1002",
		"M365TAP_LOG_LEVEL=error",
		"M365TAP_DNS_SERVERS=127.0.0.1:5302",
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:1003", "--host", "a.example.com=127.0.0.1", "--host", "b.example.com=::1"}); err != nil {
		t.Fatal(err)
	}

	c := mustLoad(t, LoadOptions{File: file, Env: env, Flags: fs})
	for _, tc := range []struct{ key, got, want string }{
		{"listen (flag over env, file, default)", c.Listen, "127.0.0.1:1003"},
		{"log.level (env over file, default; flag unset)", c.Log.Level, "error"},
		{"dns.servers (env over file)", strings.Join(c.DNS.Servers, ","), "127.0.0.1:5302"},
		{"log.language (file over default)", c.Log.Language, "ja"},
		{"log.format (default)", c.Log.Format, "json"},
		{"hosts (repeated flag)", strings.Join(c.Hosts, ","), "a.example.com=127.0.0.1,b.example.com=::1"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.key, tc.got, tc.want)
		}
	}
}

func TestEveryFlagReachesItsKey(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	args := []string{
		"--listen=127.0.0.1:9090",
		"--parent=http://proxy.example.com:3128",
		"--probes-direct",
		"--dns-server=127.0.0.1:53,127.0.0.2:53",
		"--host=login.microsoftonline.com=127.0.0.1",
		"--log-file=/tmp/events.json",
		"--log-level=debug",
		"--log-format=json",
		"--express-route",
		"--language=ja",
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if n := len(flagKeys); n != len(args) {
		t.Fatalf("test covers %d flags, BindFlags has %d", len(args), n)
	}
	c := mustLoad(t, LoadOptions{Flags: fs})
	want := Default()
	want.Listen = "127.0.0.1:9090"
	want.Parent.URL = "http://proxy.example.com:3128"
	want.Probes.Direct = true
	want.DNS.Servers = []string{"127.0.0.1:53", "127.0.0.2:53"}
	want.Hosts = []string{"login.microsoftonline.com=127.0.0.1"}
	want.Log.File = "/tmp/events.json"
	want.Log.Level = "debug"
	want.Network.ExpressRoute = true
	want.Log.Language = "ja"
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load(flags) =\n%+v\nwant\n%+v", *c, want)
	}
}

func TestUnsetFlagsKeepFileValues(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml", Flags: fs})
	if c.Listen != "0.0.0.0:3128" || c.Log.Level != "debug" || !c.Probes.Direct {
		t.Errorf("flag defaults overrode the file: listen %q, level %q, probes.direct %v", c.Listen, c.Log.Level, c.Probes.Direct)
	}
}

// TestBadFixtures holds one fixture per validation rule, with its exact message.
func TestBadFixtures(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown_key", `config: listen_addr: unknown key`},
		{"unknown_key_control", `config: "listen\naddr": unknown key`},
		{"unknown_nested_key", `config: log.levle: unknown key`},
		{"unknown_rule_key", `config: rules.user[0].url: unknown key`},
		{"type_list", `config: dns.servers = "127.0.0.1:53": want a list`},
		{"type_bool", `config: log.stdout = "yes": want true or false`},
		{"type_int", `config: log.max_size_mb = "lots": want a whole number`},
		{"type_string", `config: listen = "[127.0.0.1:8080]": want a string`},
		{"type_mapping", `config: parent = "http://ops:xxxxx@proxy.example.com:3128": want a mapping with keys url, bypass, from_environment, pac, auth`},
		{"duration", `config: timeouts.connect = "5x": want a Go duration such as 5s or 250ms`},
		{"duration_number", `config: dns.timeout = "5": want a Go duration such as 5s or 250ms`},
		{"listen_no_port", `config: listen = "127.0.0.1": want host:port with a port 0..65535, such as 127.0.0.1:8080`},
		{"listen_bad_port", `config: listen = "127.0.0.1:70000": want host:port with a port 0..65535, such as 127.0.0.1:8080`},
		{"listen_open_relay", `config: listen = "0.0.0.0:8080": a listen address beyond loopback needs access.allow (client CIDRs); without it the tap would be an open relay`},
		{"access_allow", `config: access.allow[0] = "10.0.0.0/33": want a CIDR such as 192.0.2.0/24, a single IP address, or interfaces (the networks of the machine's own interfaces, and loopback)`},
		{"access_ports_empty", `config: access.ports = "[]": want at least one port; CONNECT could reach nothing`},
		{"access_ports_range", `config: access.ports[1] = "70000": want a port 1..65535`},
		{"access_users", `config: access.users[0] = "engineer:xxxxx": want NAME:HASH with a bcrypt or argon2id hash, such as engineer:$2y$10$... (htpasswd -nbB NAME PASSWORD) or engineer:$argon2id$v=19$m=65536,t=3,p=4$SALT$HASH (m365tap hash NAME)`},
		{"access_users_argon2", `config: access.users[1] = "analyst:$argon2id$xxxxx": want $argon2id$v=19$m=KIB,t=N,p=N$SALT$HASH (or $argon2i$) with a salt of 8 bytes or more and a hash of 4 or more, in unpadded standard base64, as argon2 -e writes it`},
		{"access_users_argon2_base64", `config: access.users[0] = "analyst:$argon2id$v=19$m=65536,t=3,p=4$xxxxx": want $argon2id$v=19$m=KIB,t=N,p=N$SALT$HASH (or $argon2i$) with a salt of 8 bytes or more and a hash of 4 or more, in unpadded standard base64, as argon2 -e writes it`},
		{"access_users_argon2_cost", `config: access.users[0] = "analyst:$argon2id$v=19$m=2097152,t=3,p=4$xxxxx": want bcrypt cost 4..17, or argon2 m at most 1048576 (KiB, 1 GiB), t 1..10 and p 1..255: every login computes the hash`},
		{"access_users_bcrypt_cost", `config: access.users[0] = "engineer:xxxxx": want bcrypt cost 4..17, or argon2 m at most 1048576 (KiB, 1 GiB), t 1..10 and p 1..255: every login computes the hash`},
		{"access_max_conns", `config: access.max_conns = "0": want a whole number of connections, 1 or more`},
		{"access_max_conns_per_client", `config: access.max_conns_per_client = "-1": want a whole number of connections, 1 or more`},
		{"access_redact_query", `config: access.redact_query[0] = "a=b": want a query parameter name (without &, ;, = or spaces)`},
		{"parent_https", `config: parent.url = "https://ops:xxxxx@proxy.example.com:443": https parents are not supported yet; want http://[user:pass@]host:port`},
		{"parent_no_port", `config: parent.url = "http://ops:xxxxx@proxy.example.com": want http://[user:pass@]host:port, the port included`},
		{"parent_scheme", `config: parent.url = "socks5://proxy.example.com:1080": want http://[user:pass@]host:port, the port included`},
		{"parent_pac", `config: parent.pac = "ftp://pac.example.com/proxy.pac": want a file path or an http:// or https:// URL of a PAC file`},
		{"pac_my_ip", `config: pac.my_ip = "10.0.0.300": want an IP address such as 192.0.2.15, or empty for the client's own address`},
		{"pac_timezone", `config: pac.timezone = "Asia/Tokio": want an IANA time zone such as Asia/Tokyo, or Local`},
		{"pac_eval_timeout", `config: pac.eval_timeout = "1m0s": want a duration from 1ms to 30s, such as 2s`},
		{"pac_refresh", `config: pac.refresh = "1s": want zero (fetch at start only) or a duration of 10s or more, such as 5m`},
		{"parent_auth_scheme", `config: parent.auth.scheme = "kerberos": want "" (none), basic, ntlm, negotiate or sspi`},
		{"parent_auth_no_parent", `config: parent.auth.scheme = "basic": the tap's own credentials are for a parent: set parent.url (or parent.from_environment), or leave parent.auth.scheme empty`},
		{"parent_auth_user", `config: parent.auth.user = "": want the account name; basic and ntlm need one`},
		{"parent_auth_password", `config: parent.auth.password_file = "": want parent.auth.password_file (a file holding the password) or parent.auth.password_env (the name of a variable holding it); basic and ntlm need one`},
		{"parent_auth_both_passwords", `config: parent.auth.password_env = "TAP_PASSWORD": want parent.auth.password_file or parent.auth.password_env, not both`},
		{"parent_auth_negotiate", `config: parent.auth.scheme = "negotiate": negotiate needs parent.auth.keytab or parent.auth.ccache for Kerberos, or parent.auth.user with a password for NTLM`},
		{"parent_auth_sspi", `config: parent.auth.scheme = "sspi": sspi (the logged-on Windows user) exists only on Windows; elsewhere use negotiate with parent.auth.keytab or parent.auth.ccache`},
		{"parent_auth_kerberos_key", `config: parent.auth.keytab = "/etc/m365tap/tap.keytab": only parent.auth.scheme negotiate takes this key`},
		{"parent_auth_spn_scheme", `config: parent.auth.spn = "HTTP/proxy.example.com": only parent.auth.scheme negotiate or sspi takes this key`},
		{"parent_auth_user_scheme", `config: parent.auth.user = "tap": only parent.auth.scheme basic, ntlm or negotiate takes this key`},
		{"parent_auth_domain", `config: parent.auth.domain = "CORP": only parent.auth.scheme ntlm or negotiate takes this key`},
		{"parent_auth_spn", `config: parent.auth.spn = "proxy.example.com": want SERVICE/host such as HTTP/proxy.corp.example, without spaces`},
		{"parent_auth_clients", `config: parent.auth.clients = "true": parent.auth.clients lends the tap's own credentials: set parent.auth.scheme, or user:pass in parent.url`},
		{"parent_auth_ncsi", `config: parent.auth.ncsi = "true": parent.auth.ncsi needs parent.auth.clients: true; NCSI probe requests are client exchanges`},
		{"access_users_parent", `config: access.users = "engineer,analyst": a client sends one Proxy-Authorization; with a parent it belongs to the parent and is relayed unchanged, so the tap cannot also check it against access.users. Set parent.auth.clients: true (the tap checks its clients and authenticates to the parent itself) or remove access.users`},
		{"parent_bypass", `config: parent.bypass[0] = "http://intranet.example.com": want a host name, an IP address or a pattern such as *.example.com`},
		{"dns_server", `config: dns.servers[0] = "192.0.2.53": want IP:port such as 192.0.2.53:53 or [2001:db8::53]:53`},
		{"dns_timeout", `config: dns.timeout = "0s": want a duration greater than zero, such as 10s`},
		{"timeouts_positive", `config: timeouts.response_header = "-1s": want a duration greater than zero, such as 10s`},
		{"probes_interval", `config: probes.interval = "-5m0s": want zero (no active probe) or a positive duration such as 5m`},
		{"probes_ca_file", `config: probes.ca_file = " ": want a file path`},
		{"shutdown_grace", `config: shutdown.grace = "-1s": want zero (stop at once) or a positive duration such as 10s`},
		{"hosts_format", `config: hosts[0] = "login.microsoftonline.com": want NAME=IP with a host name and an IP address, such as login.microsoftonline.com=127.0.0.1`},
		{"hosts_ip", `config: hosts[0] = "login.microsoftonline.com=127.0.0.300": want NAME=IP with a host name and an IP address, such as login.microsoftonline.com=127.0.0.1`},
		{"hosts_name", `config: hosts[0] = "login microsoftonline.com=127.0.0.1": want NAME=IP with a host name and an IP address, such as login.microsoftonline.com=127.0.0.1`},
		{"hosts_duplicate", `config: hosts[1] = "LOGIN.microsoftonline.com.=127.0.0.2": want each name once; an earlier entry already maps it`},
		{"clients_names", `config: clients.names[1] = "PC-SALES-08=10.0.0.22": want ADDRESS=NAME with an IP address and a name of 1 to 64 printable characters, such as 10.0.0.21=PC-SALES-07`},
		{"clients_names_duplicate", `config: clients.names[1] = "::ffff:10.0.0.21=PC-SALES-08": want each address once; an earlier entry already names it`},
		{"log_level", `config: log.level = "verbose": want debug, info, warn or error`},
		{"log_format", `config: log.format = "xml": want json, ecs or cef`},
		{"log_drain_timeout", `config: log.drain_timeout = "0s": want a duration greater than zero, such as 10s`},
		{"sink_type", `config: log.sinks[0].type = "kafka": want stdout, file or syslog`},
		{"sink_format", `config: log.sinks[0].format = "leef": want json, ecs or cef`},
		{"sink_level", `config: log.sinks[0].level = "trace": want debug, info, warn or error`},
		{"sink_path", `config: log.sinks[0].path = "": want a file path`},
		{"sink_path_duplicate", `config: log.sinks[0].path = "/var/log/m365tap/./events.json": want each file once; log.file or an earlier sink already writes it`},
		{"sink_only_file", `config: log.sinks[0].path = "/var/log/m365tap/events.json": only a file sink takes a path`},
		{"sink_only_syslog", `config: log.sinks[0].address = "siem.example.com:514": only a syslog sink takes this key`},
		{"sink_network", `config: log.sinks[0].network = "sctp": want udp, tcp, tls or relp`},
		{"sink_disk_queue", `config: log.sinks[0].disk_queue = " ": want a directory path`},
		{"sink_disk_queue_udp", `config: log.sinks[0].disk_queue = "/var/lib/m365tap/queue": want network tcp, tls or relp with a disk queue; over udp nothing tells what arrived`},
		{"sink_disk_queue_duplicate", `config: log.sinks[1].disk_queue = "/var/lib/m365tap/queue/": want each directory once; an earlier sink already queues in it`},
		{"sink_disk_queue_max", `config: log.sinks[0].disk_queue_max_mb = "-5": want zero (1024 MB) or a positive number of megabytes`},
		{"sink_only_disk_queue", `config: log.sinks[0].disk_queue_max_mb = "512": only a sink with a disk_queue takes this key`},
		{"sink_address", `config: log.sinks[0].address = "siem.example.com": want host:port with a port 1..65535, such as siem.example.com:6514`},
		{"sink_only_tls", `config: log.sinks[0].ca_file = "/etc/m365tap/siem-ca.pem": only a syslog sink with network tls takes this key`},
		{"sink_cert_pair", `config: log.sinks[0].key_file = "": want cert_file and key_file together`},
		{"sink_facility", `config: log.sinks[0].facility = "local9": want kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp or local0 to local7`},
		{"sink_app_name", `config: log.sinks[0].app_name = "m365 tap": want at most 48 printable ASCII characters, no spaces`},
		{"sink_queue_size", `config: log.sinks[0].queue_size = "-1": want zero (10000 events) or a positive number of events`},
		{"sink_unknown_key", `config: log.sinks[0].port: unknown key`},
		{"log_language", `config: log.language = "fr": want en or ja`},
		{"log_max_size", `config: log.max_size_mb = "0": want a size in megabytes greater than zero`},
		{"log_max_backups", `config: log.max_backups = "-1": want zero (keep every rotated file) or more`},
		{"log_max_age", `config: log.max_age_days = "-1": want zero (no age limit) or more days`},
		{"log_nowhere", `config: log.stdout = "false": want true when log.file and log.sinks are empty; otherwise events go nowhere`},
		{"rules_files", `config: rules.files[0] = "": want a file path`},
		{"rule_id", `config: rules.user[0].id = "": want a non-empty rule id`},
		{"rule_duplicate_id", `config: rules.user[1].id = "intranet": want each id once; an earlier rule already has it`},
		{"rule_urls", `config: rules.user[0].urls = "[]": want at least one URL or host pattern`},
		{"rule_tcp_ports", `config: rules.user[0].tcp_ports = "80, 443, x": want a comma-separated list of ports 1..65535, such as 80,443`},
		{"rule_probe_path", `config: rules.user[0].probe_path = "connecttest.txt": want a path starting with /, such as /connecttest.txt`},
		{"rule_probe_content", `config: rules.user[0].probe_content = "": want the text a probe's body must contain, such as Microsoft Connect Test`},
		{"syntax", `config: testdata/bad/syntax.yaml: yaml: line 1: did not find expected ',' or ']'`},
		{"several", "config: listen = \"0.0.0.0:8080\": a listen address beyond loopback needs access.allow (client CIDRs); without it the tap would be an open relay\n" +
			`config: log.level = "verbose": want debug, info, warn or error`},
	}

	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			seen[tc.file+".yaml"] = true
			_, err := load(t, LoadOptions{File: filepath.Join("testdata", "bad", tc.file+".yaml")})
			if err == nil {
				t.Fatalf("Load succeeded, want %s", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", got, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %s", err)
			}
			// The access.users fixtures' salts and hashes.
			for _, s := range []string{"c2FsdHNhbHQ", "0WEDi1kO", "/SZbzX7X", "ZZOjejqt"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a salt or hash: %s", err)
				}
			}
		})
	}

	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected message in this table", f)
		}
	}
}

func TestErrorsAreTyped(t *testing.T) {
	_, err := load(t, LoadOptions{File: "testdata/bad/duration.yaml"})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "timeouts.connect" || fe.Value != "5x" {
		t.Errorf("errors.As FieldError: %#v from %v", fe, err)
	}
	_, err = load(t, LoadOptions{File: "testdata/bad/unknown_key.yaml"})
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.Key != "listen_addr" {
		t.Errorf("errors.As UnknownKeyError: %#v from %v", uk, err)
	}
}

func TestBadEnv(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"M365TAP_LOG_STDOUT=maybe", `config: log.stdout = "maybe": want true or false`},
		{"M365TAP_LOG_MAX_SIZE_MB=big", `config: log.max_size_mb = "big": want a whole number`},
		{"M365TAP_ACCESS_PORTS=80,https", `config: access.ports = "80,https": want a comma-separated list of whole numbers`},
		{"M365TAP_TIMEOUTS_IDLE=forever", `config: timeouts.idle = "forever": want a Go duration such as 5s or 250ms`},
		{"M365TAP_RULES_USER=intranet", `config: rules.user = "intranet": want a list`},
		{"M365TAP_LOG_SINKS=syslog", `config: log.sinks = "syslog": want a list`},
		{"M365TAP_LOG_DRAIN_TIMEOUT=soon", `config: log.drain_timeout = "soon": want a Go duration such as 5s or 250ms`},
		{"M365TAP_PARENT_URL=https://ops:" + secret + "@proxy.example.com:443", `config: parent.url = "https://ops:xxxxx@proxy.example.com:443": https parents are not supported yet; want http://[user:pass@]host:port`},
		{"M365TAP_PARENT_URL=ops:" + secret + "@proxy.example.com:3128", `config: parent.url = "ops:xxxxx@proxy.example.com:3128": want http://[user:pass@]host:port, the port included`},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			_, err := load(t, LoadOptions{Env: []string{tc.env}})
			if err == nil || err.Error() != tc.want {
				t.Errorf("error\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestParentURL(t *testing.T) {
	tests := []struct {
		name       string
		file       string // parent section
		env        []string
		want       string // "" means nil
		wantSource string
	}{
		{"none", "", []string{"HTTPS_PROXY=http://ignored.example.com:3128"}, "", ""},
		{"configured", "url: http://proxy.example.com:3128", nil, "http://proxy.example.com:3128", "parent.url"},
		{"configured beats environment", "url: http://proxy.example.com:3128\n  from_environment: true",
			[]string{"HTTPS_PROXY=http://env.example.com:8080"}, "http://proxy.example.com:3128", "parent.url"},
		{"HTTPS_PROXY first", "from_environment: true",
			[]string{"HTTP_PROXY=http://plain.example.com:80", "HTTPS_PROXY=http://secure.example.com:8080"}, "http://secure.example.com:8080", "HTTPS_PROXY"},
		{"lower case", "from_environment: true",
			[]string{"http_proxy=http://plain.example.com:3128"}, "http://plain.example.com:3128", "http_proxy"},
		{"no scheme means http", "from_environment: true",
			[]string{"https_proxy=proxy.example.com:3128"}, "http://proxy.example.com:3128", "https_proxy"},
		{"environment empty", "from_environment: true", nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "tap.yaml")
			if err := os.WriteFile(file, []byte("parent:\n  "+tc.file+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := tc.env
			if env == nil {
				env = noEnv
			}
			c := mustLoad(t, LoadOptions{File: file, Env: env})
			got := ""
			if u := c.ParentURL(); u != nil {
				got = u.String()
			}
			if got != tc.want || c.ParentSource() != tc.wantSource {
				t.Errorf("ParentURL() = %q from %q, want %q from %q", got, c.ParentSource(), tc.want, tc.wantSource)
			}
		})
	}
}

func TestParentFromEnvironmentIsValidated(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tap.yaml")
	if err := os.WriteFile(file, []byte("parent:\n  from_environment: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := load(t, LoadOptions{File: file, Env: []string{"HTTPS_PROXY=https://ops:" + secret + "@proxy.example.com:443"}})
	want := `config: HTTPS_PROXY = "https://ops:xxxxx@proxy.example.com:443": https parents are not supported yet; want http://[user:pass@]host:port`
	if err == nil || err.Error() != want {
		t.Errorf("error\n got: %v\nwant: %s", err, want)
	}
}

func TestHostOverrides(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml"})
	want := map[string]netip.Addr{
		"login.microsoftonline.com": netip.MustParseAddr("127.0.0.1"),
		"www.msftconnecttest.com":   netip.MustParseAddr("::1"),
	}
	if got := c.HostOverrides(); !reflect.DeepEqual(got, want) {
		t.Errorf("HostOverrides() = %v, want %v", got, want)
	}
}

func TestProbeRoots(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml"})
	pool, err := c.ProbeRoots()
	if err != nil || pool == nil || !pool.Equal(mustPool(t, "testdata/probe-ca.pem")) {
		t.Errorf("ProbeRoots() = %v, %v; want the pool of testdata/probe-ca.pem", pool, err)
	}
	d := Default()
	if pool, err := d.ProbeRoots(); pool != nil || err != nil {
		t.Errorf("Default().ProbeRoots() = %v, %v; want nil (the system roots)", pool, err)
	}
	// Read where it is used: a file that is missing or holds no
	// certificate is an error naming the key, never the system roots.
	for file, want := range map[string]string{
		"testdata/missing-ca.pem":      `config: probes.ca_file = "testdata/missing-ca.pem": want a PEM file of CA certificates, or empty for the system roots: no such file or directory`,
		"testdata/parent-password.txt": `config: probes.ca_file = "testdata/parent-password.txt": want a PEM file of CA certificates, or empty for the system roots: no PEM certificate in it`,
	} {
		d.Probes.CAFile = file
		pool, err := d.ProbeRoots()
		var fe *FieldError
		if pool != nil || !errors.As(err, &fe) || err.Error() != want {
			t.Errorf("ProbeRoots(%s) = %v, %v; want %s", file, pool, err, want)
		}
	}
}

func mustPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s: no certificate", file)
	}
	return p
}

func TestClientNames(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml"})
	want := map[string]string{"10.0.0.21": "PC-SALES-07", "2001:db8::21": "Kiosk 2 (lobby)"}
	if got := c.ClientNames(); !reflect.DeepEqual(got, want) {
		t.Errorf("ClientNames() = %v, want %v", got, want)
	}
	// The environment's comma-separated list, an IPv4-mapped address
	// unmapped as events show it, spaces around the = trimmed.
	c = mustLoad(t, LoadOptions{Env: []string{"M365TAP_CLIENTS_NAMES=::ffff:10.0.0.5 = PC-A,10.0.0.6=PC-B"}})
	want = map[string]string{"10.0.0.5": "PC-A", "10.0.0.6": "PC-B"}
	if got := c.ClientNames(); !reflect.DeepEqual(got, want) {
		t.Errorf("ClientNames() from the environment = %v, want %v", got, want)
	}
	if d := Default(); d.ClientNames() != nil {
		t.Errorf("Default().ClientNames() = %v, want nil", d.ClientNames())
	}
	for _, bad := range []string{"10.0.0.5", "10.0.0.5=", "fe80::1%eth0=PC", "10.0.0.5=PC\x1b[31m", "10.0.0.5=" + strings.Repeat("x", 65)} {
		d := Default()
		d.Clients.Names = []string{bad}
		if err := d.Validate(); err == nil {
			t.Errorf("clients.names %q validated", bad)
		}
	}
}

func TestAllowPrefixes(t *testing.T) {
	c := Default()
	c.Access.Allow = []string{"192.0.2.77/24", "198.51.100.7", "2001:db8::1", "::ffff:203.0.113.9", "2001:db8::/32"}
	want := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("203.0.113.9/32"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if got := c.AllowPrefixes(); !reflect.DeepEqual(got, want) {
		t.Errorf("AllowPrefixes() = %v, want %v", got, want)
	}
	if c.AllowInterfaces() {
		t.Error("AllowInterfaces() without the entry")
	}
	d := Default()
	if got := d.AllowPrefixes(); got != nil {
		t.Errorf("Default().AllowPrefixes() = %v, want nil", got)
	}
	// "interfaces" is read by the tap when it starts, not a prefix; with
	// it a wildcard listener has its allow list.
	c.Listen = "0.0.0.0:8080"
	c.Access.Allow = []string{"Interfaces", "192.0.2.0/24"}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with interfaces: %v", err)
	}
	if !c.AllowInterfaces() || !reflect.DeepEqual(c.AllowPrefixes(), []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}) {
		t.Errorf("AllowInterfaces() = %v, AllowPrefixes() = %v", c.AllowInterfaces(), c.AllowPrefixes())
	}
}

func TestListenLoopback(t *testing.T) {
	tests := []struct {
		listen string
		ok     bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.2:0", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"LOCALHOST:8080", true},
		{"[::ffff:127.0.0.1]:8080", true},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{":8080", false},
		{"192.0.2.1:8080", false},
		{"tap.example.com:8080", false},
	}
	for _, tc := range tests {
		c := Default()
		c.Listen = tc.listen
		err := c.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("listen %s without access.allow: err = %v, want ok=%v", tc.listen, err, tc.ok)
		}
		c.Access.Allow = []string{"192.0.2.0/24"}
		if err := c.Validate(); err != nil {
			t.Errorf("listen %s with access.allow: %v", tc.listen, err)
		}
	}
}

func TestPasswordNeverShown(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml"})
	if c.ParentURL() == nil {
		t.Fatal("good.yaml has a parent")
	}
	if p, _ := c.ParentURL().User.Password(); p != secret {
		t.Fatalf("ParentURL() lost the password the proxy needs")
	}

	r := c.Redacted()
	if want := "http://ops:xxxxx@proxy.example.com:8080"; r.Parent.URL != want {
		t.Errorf("Redacted().Parent.URL = %q, want %q", r.Parent.URL, want)
	}
	if !strings.Contains(c.Parent.URL, secret) {
		t.Error("Redacted changed the original")
	}
	r.Rules.User[0].URLs[0] = "changed"
	if c.Rules.User[0].URLs[0] == "changed" {
		t.Error("Redacted shares slices with the original")
	}

	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(y), secret) {
		t.Errorf("YAML shows the password:\n%s", y)
	}

	envProxy := mustLoad(t, LoadOptions{
		File: "testdata/good.yaml",
		Env:  []string{"M365TAP_PARENT_URL=", "HTTPS_PROXY=http://ops:" + secret + "@env.example.com:3128"},
	})
	y, err = envProxy.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(y), secret) || !strings.Contains(string(y), `from HTTPS_PROXY: "http://ops:xxxxx@env.example.com:3128"`) {
		t.Errorf("YAML with a parent from the environment:\n%s", y)
	}

	fe := &FieldError{Key: "parent.url", Value: "http://ops:" + secret + "@proxy", Allowed: "x"}
	if strings.Contains(fe.Error(), secret) {
		t.Errorf("a hand-made FieldError shows the password: %s", fe)
	}
}

func TestMaskPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"http://proxy:3128", "http://proxy:3128"},
		{"http://ops@proxy:3128", "http://ops@proxy:3128"},
		{"http://ops:pw@proxy:3128", "http://ops:xxxxx@proxy:3128"},
		{"http://ops:p@ss:w@rd@proxy:3128", "http://ops:xxxxx@proxy:3128"},
		{"http://ops:pa ss@proxy:3128", "http://ops:xxxxx@proxy:3128"},
		{"ops:pw@proxy:3128", "ops:xxxxx@proxy:3128"},
		{"[http://a:pw1@h:1 http://b:pw2@h:2]", "[http://a:xxxxx@h:2]"},
	}
	for _, tc := range tests {
		if got := maskPassword(tc.in); got != tc.want {
			t.Errorf("maskPassword(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestYAMLRoundTrip: what config print shows loads back to the same config,
// password aside.
func TestYAMLRoundTrip(t *testing.T) {
	for _, src := range []string{"", "testdata/good.yaml"} {
		t.Run(src, func(t *testing.T) {
			c := mustLoad(t, LoadOptions{File: src})
			y, err := c.YAML()
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "printed.yaml")
			if err := os.WriteFile(file, y, 0o600); err != nil {
				t.Fatal(err)
			}
			back := mustLoad(t, LoadOptions{File: file})
			want := c.Redacted()
			want.source, back.source = "", ""
			if !reflect.DeepEqual(*back, want) {
				t.Errorf("printed config loads as\n%+v\nwant\n%+v\nYAML:\n%s", *back, want, y)
			}
		})
	}
}

func TestYAMLText(t *testing.T) {
	c := Default()
	c.Hosts = []string{"true=127.0.0.1"}
	c.Rules.User = []UserRule{{ID: "125", URLs: []string{"*.example.com"}, TCPPorts: "443"}}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"listen: 127.0.0.1:8080\n",
		"  idle: 1m30s\n",
		"  bypass: []\n",
		"    - id: \"125\"\n",
		"      tcp_ports: \"443\"\n",
		"      urls:\n        - '*.example.com'\n",
		"  catalogue: \"\"\n",
	} {
		if !strings.Contains(string(y), want) {
			t.Errorf("YAML lacks %q:\n%s", want, y)
		}
	}
}

// FuzzLoad feeds arbitrary files through Load: it must not panic, and a
// config it accepts must print as YAML that loads back to itself.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bad/*.yaml")
	seeds = append(seeds, "testdata/good.yaml", "../m365tap.example.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(LoadOptions{File: file, Env: noEnv})
		if err != nil {
			return
		}
		y, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		if err := os.WriteFile(file, y, 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := Load(LoadOptions{File: file, Env: noEnv})
		if err != nil {
			t.Fatalf("printed config does not load: %v\n%s", err, y)
		}
		want := c.Redacted()
		want.source, back.source = "", ""
		if !reflect.DeepEqual(*back, want) {
			t.Fatalf("round trip changed the config\n%+v\n%+v", *back, want)
		}
	})
}

func TestParentPassword(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/good.yaml"})
	if pw, err := c.ParentPassword(); err != nil || pw != "Tap-pw-1" {
		t.Errorf("password_file: %q, %v", pw, err)
	}
	if got := c.ParentSPN(); got != "HTTP/proxy.corp.example.com" {
		t.Errorf("ParentSPN = %q", got)
	}

	const pw = "env-Secret-9"
	c = mustLoad(t, LoadOptions{Env: []string{
		"M365TAP_PARENT_URL=http://Proxy.Corp.Example:3128",
		"M365TAP_PARENT_AUTH_SCHEME=ntlm",
		"M365TAP_PARENT_AUTH_USER=tap",
		"M365TAP_PARENT_AUTH_PASSWORD_ENV=TAP_PROXY_PASSWORD",
		"TAP_PROXY_PASSWORD=" + pw,
	}})
	if got, err := c.ParentPassword(); err != nil || got != pw {
		t.Errorf("password_env: %q, %v", got, err)
	}
	// The SPN is named after the parent as configured, as a client names it.
	if got := c.ParentSPN(); got != "HTTP/Proxy.Corp.Example" {
		t.Errorf("ParentSPN = %q", got)
	}
	// The password is in no rendering of the config.
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(y), fmt.Sprintf("%v %+v %#v", *c, *c, *c)} {
		if strings.Contains(out, pw) {
			t.Errorf("the password shows:\n%s", out)
		}
	}

	// What cannot be read is reported at start, naming the key.
	for _, tc := range []struct {
		yaml, want string
	}{
		{"password_file: testdata/no-such-password.txt", `config: parent.auth.password_file = "testdata/no-such-password.txt": want a readable file whose first line is the password: no such file or directory`},
		{"password_file: testdata/parent-password-empty.txt", `config: parent.auth.password_file = "testdata/parent-password-empty.txt": want a readable file whose first line is the password: the first line is empty`},
		{"password_env: M365TAP_TEST_UNSET_PASSWORD", `config: parent.auth.password_env = "M365TAP_TEST_UNSET_PASSWORD": want the name of an environment variable that is set, not empty, in the tap's environment`},
	} {
		f := filepath.Join(t.TempDir(), "m365tap.yaml")
		if err := os.WriteFile(f, []byte("parent:\n  url: http://proxy.example.com:3128\n  auth:\n    scheme: basic\n    user: tap\n    "+tc.yaml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := mustLoad(t, LoadOptions{File: f})
		var fe *FieldError
		if _, err := c.ParentPassword(); !errors.As(err, &fe) || err.Error() != tc.want {
			t.Errorf("%s: %v; want %s", tc.yaml, err, tc.want)
		}
	}

	c = mustLoad(t, LoadOptions{})
	if got, err := c.ParentPassword(); got != "" || err != nil || c.ParentSPN() != "" {
		t.Errorf("no parent: %q, %v, %q", got, err, c.ParentSPN())
	}
}
