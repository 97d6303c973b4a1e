// Package config loads m365tap's settings: embedded defaults, then an
// optional YAML file, then M365TAP_* environment variables, then flags. It is
// the only package that knows viper; everything else reads the immutable
// Config it returns.
package config

import "time"

// Config is the whole effective configuration. Field tags are the YAML keys;
// Default holds every default in one place.
type Config struct {
	// Listen is the proxy's listen address. Anything but loopback needs Access.Allow.
	Listen string `mapstructure:"listen"`
	Parent Parent `mapstructure:"parent"`
	PAC    PAC    `mapstructure:"pac"`
	Probes Probes `mapstructure:"probes"`
	DNS    DNS    `mapstructure:"dns"`
	// Hosts are NAME=IP overrides consulted before DNS, like /etc/hosts.
	Hosts    []string `mapstructure:"hosts"`
	Timeouts Timeouts `mapstructure:"timeouts"`
	Network  Network  `mapstructure:"network"`
	Clients  Clients  `mapstructure:"clients"`
	Access   Access   `mapstructure:"access"`
	Rules    Rules    `mapstructure:"rules"`
	Log      Log      `mapstructure:"log"`
	Shutdown Shutdown `mapstructure:"shutdown"`

	// source is the file Load read, if any; reported by Source.
	source string
	// envProxy and envProxyVar are the parent proxy found in the environment
	// given to Load (and the variable it came from). Kept here rather than
	// read again later so that ParentURL answers from the same environment
	// that was validated.
	envProxy    string
	envProxyVar string
	// envPassword is the value of the variable parent.auth.password_env
	// names, in the environment given to Load; nil when it was not set. A
	// pointer, so that printing a Config with %v shows an address, never
	// the password.
	envPassword *string
}

// Parent is the corporate (parent) proxy. An empty URL means every route is direct.
type Parent struct {
	// URL is http://[user:pass@]host:port. The password is a secret: it is masked
	// wherever the config is printed.
	URL string `mapstructure:"url"`
	// Bypass lists host patterns (exact names or *.suffix) that always go direct.
	Bypass []string `mapstructure:"bypass"`
	// FromEnvironment takes the parent from HTTPS_PROXY/HTTP_PROXY when URL is empty.
	// Off by default: a tap must not silently chain through a proxy it inherited.
	FromEnvironment bool `mapstructure:"from_environment"`
	// PAC is the PC's proxy auto-config file: a file path or an http(s)
	// URL. When set, the PAC chooses the way out per destination, as on the
	// PC; URL (or direct) is the fallback while the PAC cannot be loaded.
	// Empty: no PAC.
	PAC string `mapstructure:"pac"`
	// Auth are the tap's own credentials for the parent; with a scheme set
	// they replace user:pass in URL. The zero value: none beyond user:pass
	// in URL (Basic). Clients' own credentials are relayed either way.
	Auth ParentAuth `mapstructure:"auth"`
}

// Probes controls NCSI probe handling.
type Probes struct {
	// Direct sends NCSI probe traffic direct even when a parent is configured.
	Direct bool `mapstructure:"direct"`
	// Interval runs the active probe every Interval; 0 disables it.
	Interval time.Duration `mapstructure:"interval"`
	// CAFile is a PEM file of CA certificates the active probe's TLS
	// checks verify against instead of the system roots (probe --ca-file
	// wins); its events' tls_trusted say whether a chain verified. Empty:
	// the system roots.
	CAFile string `mapstructure:"ca_file"`
}

// DNS configures the tap's own resolver for direct routes.
type DNS struct {
	// Servers are host:port of DNS servers; empty means the system resolver.
	Servers []string      `mapstructure:"servers"`
	Timeout time.Duration `mapstructure:"timeout"`
}

// Timeouts bound each phase of an exchange.
type Timeouts struct {
	Connect        time.Duration `mapstructure:"connect"`
	ResponseHeader time.Duration `mapstructure:"response_header"`
	// Idle closes keep-alive client connections idle this long.
	Idle time.Duration `mapstructure:"idle"`
	// ReadHeader bounds how long a client may take to send a request head.
	ReadHeader time.Duration `mapstructure:"read_header"`
	// TunnelLinger bounds how long a tunnel stays open after one side
	// half-closed, and how long a plain request whose client half-closed
	// may go without a byte of its answer reaching the client.
	TunnelLinger time.Duration `mapstructure:"tunnel_linger"`
	// TunnelIdle closes a tunnel with no traffic in either direction this long.
	TunnelIdle time.Duration `mapstructure:"tunnel_idle"`
}

// Network describes the customer's network so causes can be chosen.
type Network struct {
	// ExpressRoute: the customer uses Azure ExpressRoute.
	ExpressRoute bool `mapstructure:"express_route"`
}

// Clients describes the PCs that use the tap, for the people who read
// its output.
type Clients struct {
	// Names are ADDRESS=NAME entries: the PC at ADDRESS is shown as NAME
	// beside its address by report and tail. A list of strings rather than
	// a mapping because viper reads mapping keys as key paths: the dots of
	// an IPv4 address (and the colons of an IPv6 one) would split it.
	Names []string `mapstructure:"names"`
}

// Access is the tap's own policy.
type Access struct {
	// Allow lists client CIDRs; required when Listen is not loopback. Empty
	// with a loopback listener means loopback clients only. The entry
	// "interfaces" stands for the networks of the machine's own interfaces
	// and loopback, read when the tap starts.
	Allow []string `mapstructure:"allow"`
	// Ports are the destination ports CONNECT may reach.
	Ports []int `mapstructure:"ports"`
	// Users are NAME:HASH entries, the hash bcrypt or Argon2id/Argon2i in
	// PHC format; when set, clients must send Proxy-Authorization Basic.
	// Empty: no client authentication.
	Users []string `mapstructure:"users"`
	// MaxConns bounds concurrent client connections.
	MaxConns int `mapstructure:"max_conns"`
	// MaxConnsPerClient bounds concurrent connections from one client address.
	MaxConnsPerClient int `mapstructure:"max_conns_per_client"`
	// RedactQuery are extra query keys whose values are logged as REDACTED.
	RedactQuery []string `mapstructure:"redact_query"`
}

// Rules points at rule sources beyond the embedded catalogue.
type Rules struct {
	// Files are YAML user-rule files, reloaded when they change.
	Files []string `mapstructure:"files"`
	// Catalogue is the path of an updated endpoint JSON (written by
	// `m365tap rules update`); empty or missing means the embedded snapshot.
	Catalogue string `mapstructure:"catalogue"`
	// User rules given inline.
	User []UserRule `mapstructure:"user"`
}

// UserRule is one user-defined endpoint or probe rule. Field meanings follow
// the official endpoint JSON.
type UserRule struct {
	ID           string   `mapstructure:"id" yaml:"id" json:"id"`
	ServiceArea  string   `mapstructure:"service_area" yaml:"service_area" json:"service_area"`
	URLs         []string `mapstructure:"urls" yaml:"urls" json:"urls"`
	TCPPorts     string   `mapstructure:"tcp_ports" yaml:"tcp_ports" json:"tcp_ports"`
	Required     bool     `mapstructure:"required" yaml:"required" json:"required"`
	ExpressRoute bool     `mapstructure:"express_route" yaml:"express_route" json:"express_route"`
	Category     string   `mapstructure:"category" yaml:"category" json:"category"`
	Notes        string   `mapstructure:"notes" yaml:"notes" json:"notes"`
	// Probe turns the rule into an NCSI-style probe: a GET of ProbePath must
	// answer 200 with a body containing ProbeContent.
	Probe        bool   `mapstructure:"probe" yaml:"probe" json:"probe"`
	ProbePath    string `mapstructure:"probe_path" yaml:"probe_path" json:"probe_path"`
	ProbeContent string `mapstructure:"probe_content" yaml:"probe_content" json:"probe_content"`
}

// Log configures the event stream.
type Log struct {
	// Level is the minimum level written: debug, info, warn, error.
	Level string `mapstructure:"level"`
	// Format of the event lines on stdout and in log.file: json (the
	// tap's own schema), ecs (Elastic Common Schema) or cef (ArcSight CEF).
	Format string `mapstructure:"format"`
	// Stdout writes events to standard output.
	Stdout bool `mapstructure:"stdout"`
	// File, when set, also writes events to this rotating file.
	File       string `mapstructure:"file"`
	MaxSizeMB  int    `mapstructure:"max_size_mb"`
	MaxBackups int    `mapstructure:"max_backups"`
	MaxAgeDays int    `mapstructure:"max_age_days"`
	Compress   bool   `mapstructure:"compress"`
	// Language of cause titles and remedies: en or ja.
	Language string `mapstructure:"language"`
	// Users writes the user name of a client's Basic or NTLM credential
	// into events (proxy_auth_user). Off by default: a user name is
	// personal data.
	Users bool `mapstructure:"users"`
	// Sinks are further outputs, each with its own format and level, in
	// addition to stdout and file above. Empty: those two only.
	Sinks []Sink `mapstructure:"sinks"`
	// DrainTimeout bounds how long shutdown waits for the syslog sinks to
	// send what they still hold; what is left is reported as lost.
	DrainTimeout time.Duration `mapstructure:"drain_timeout"`
}

// Sink is one output of the event stream. Keys a type does not use must be
// left empty.
type Sink struct {
	// Type is stdout, file or syslog.
	Type string `mapstructure:"type"`
	// Format is json, ecs or cef; empty means log.format.
	Format string `mapstructure:"format"`
	// Level is the minimum level: debug, info, warn or error; empty means log.level.
	Level string `mapstructure:"level"`
	// Path is the file of a file sink, rotated as log.file is
	// (log.max_size_mb, log.max_backups, log.max_age_days, log.compress).
	Path string `mapstructure:"path"`
	// Network is the syslog transport: udp (RFC 5426, best effort), tcp
	// (RFC 6587 octet counting), tls (RFC 5425) or relp (RELP, rsyslog's
	// imrelp: each event is acknowledged by the receiving daemon).
	Network string `mapstructure:"network"`
	// Address is the syslog receiver's host:port.
	Address string `mapstructure:"address"`
	// CAFile is a PEM bundle that verifies a tls receiver; empty means the
	// system's roots.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key, for a
	// receiver that asks for one; both or neither.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName is the name the receiver's certificate must carry; empty
	// means the host of Address.
	ServerName string `mapstructure:"server_name"`
	// Facility is the syslog facility name; empty means local0.
	Facility string `mapstructure:"facility"`
	// AppName is the syslog APP-NAME; empty means m365tap.
	AppName string `mapstructure:"app_name"`
	// QueueSize is how many events a syslog sink holds while its receiver
	// is slow or away; 0 means 10000. Beyond it events are counted as
	// dropped and reported in an events_dropped record.
	QueueSize int `mapstructure:"queue_size"`
	// DiskQueue is a directory where a tcp, tls or relp syslog sink keeps
	// its events until the receiver has acknowledged them, so that an
	// outage longer than the memory queue, or a restart of the tap during
	// one, loses nothing up to DiskQueueMaxMB. Empty: memory only.
	DiskQueue string `mapstructure:"disk_queue"`
	// DiskQueueMaxMB bounds the events held in DiskQueue, in megabytes;
	// 0 means DefaultDiskQueueMaxMB. Beyond it events are counted as
	// dropped and reported in an events_dropped record.
	DiskQueueMaxMB int `mapstructure:"disk_queue_max_mb"`
}

// DefaultDiskQueueMaxMB is the bound of a sink's disk_queue when
// disk_queue_max_mb is 0: about half a million events of 2 kB.
const DefaultDiskQueueMaxMB = 1024

// SyslogFacilities are the facility names a syslog sink accepts, with
// their RFC 5424 codes.
var SyslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// Shutdown bounds the graceful stop.
type Shutdown struct {
	// Grace is how long in-flight exchanges may finish after a stop signal.
	Grace time.Duration `mapstructure:"grace"`
}

// Default returns the embedded defaults: running with no file uses exactly these.
func Default() Config {
	return Config{
		Listen: "127.0.0.1:8080",
		PAC:    PAC{Timezone: "Local", EvalTimeout: 2 * time.Second, Refresh: 5 * time.Minute},
		DNS:    DNS{Timeout: 5 * time.Second},
		Timeouts: Timeouts{
			Connect:        10 * time.Second,
			ResponseHeader: 30 * time.Second,
			Idle:           90 * time.Second,
			ReadHeader:     10 * time.Second,
			TunnelLinger:   30 * time.Second,
			TunnelIdle:     10 * time.Minute,
		},
		Access: Access{Ports: []int{80, 443}, MaxConns: 4096, MaxConnsPerClient: 256},
		Log: Log{
			Level:        "info",
			Format:       "json",
			Stdout:       true,
			MaxSizeMB:    100,
			MaxBackups:   5,
			MaxAgeDays:   0,
			Compress:     true,
			Language:     "en",
			DrainTimeout: 5 * time.Second,
		},
		Shutdown: Shutdown{Grace: 10 * time.Second},
	}
}
