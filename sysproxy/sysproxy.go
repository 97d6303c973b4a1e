// Package sysproxy points a Windows PC's proxy settings at the tap and puts
// them back: the user's WinINET proxy for the LAN and for every dial-up and
// VPN connection, the machine's WinHTTP proxy (which NCSI tries first), and
// the sign-in broker's loopback exemption. What was there before is kept in
// a backup file before anything changes, so that Off restores it exactly,
// also after a crash, and only where the setting still points at the tap.
//
// The Windows calls sit behind small interfaces (UserStore, MachineStore,
// Exempter) so that this logic is tested on every system with fakes; the
// Windows implementations are in the _windows.go files.
package sysproxy

import (
	"errors"
	"strings"
)

// BrokerPackage is the Windows sign-in broker's AppContainer package
// family name. AppContainer apps cannot reach a loopback listener unless
// exempted, so a tap on 127.0.0.1 may break the sign-in it watches.
const BrokerPackage = "Microsoft.AAD.BrokerPlugin_cw5n1h2txyewy"

// ErrNeedsElevation is returned by stores whose change needs an elevated
// prompt (the WinHTTP proxy, the loopback exemption).
var ErrNeedsElevation = errors.New("needs an elevated prompt (Run as administrator)")

// ErrUnavailable is returned when a tool the store needs is missing.
var ErrUnavailable = errors.New("not available on this PC")

// ErrUnsupported is returned on systems without these settings.
var ErrUnsupported = errors.New("system proxy settings exist on Windows only")

// WinINET per-connection flags (INTERNET_PER_CONN_FLAGS).
const (
	ProxyTypeDirect       uint32 = 0x1
	ProxyTypeProxy        uint32 = 0x2
	ProxyTypeAutoProxyURL uint32 = 0x4
	ProxyTypeAutoDetect   uint32 = 0x8
)

// ConnSettings is one WinINET connection's proxy settings, as
// InternetQueryOptionW's per-connection options report them.
type ConnSettings struct {
	Flags         uint32 `json:"flags"`
	Server        string `json:"server"`
	Bypass        string `json:"bypass"`
	AutoConfigURL string `json:"auto_config_url"`
}

// PointsAt reports whether the settings send traffic to the proxy at addr.
func (c ConnSettings) PointsAt(addr string) bool {
	return c.Flags&ProxyTypeProxy != 0 && sameProxy(c.Server, addr)
}

// RegValue is one registry value exactly as it was: its type and bytes, or
// its absence.
type RegValue struct {
	Name   string `json:"name"`
	Absent bool   `json:"absent,omitempty"`
	Type   uint32 `json:"type,omitempty"`
	Data   []byte `json:"data,omitempty"`
}

// UserStore is the user's WinINET proxy settings. Connection "" is the LAN;
// the others are dial-up and VPN (RAS) entries by name.
type UserStore interface {
	Connections() ([]string, error)
	Query(conn string) (ConnSettings, error)
	Set(conn string, s ConnSettings) error
	// Notify tells running programs the settings changed
	// (INTERNET_OPTION_SETTINGS_CHANGED, then INTERNET_OPTION_REFRESH).
	Notify() error
	// Raw returns the registry values behind a connection's settings
	// (its Connections blob; for the LAN also ProxyEnable, ProxyServer,
	// ProxyOverride and AutoConfigURL), and RestoreRaw writes them back.
	Raw(conn string) ([]RegValue, error)
	RestoreRaw(conn string, vals []RegValue) error
}

// WinHTTP access types (WINHTTP_ACCESS_TYPE_*).
const (
	AccessDefault uint32 = 0 // WINHTTP_ACCESS_TYPE_DEFAULT_PROXY: the registry's setting
	AccessNoProxy uint32 = 1
	AccessNamed   uint32 = 3
)

// MachineSettings is the machine's WinHTTP default proxy.
type MachineSettings struct {
	AccessType uint32 `json:"access_type"`
	Proxy      string `json:"proxy"`
	Bypass     string `json:"bypass"`
}

// PointsAt reports whether the setting sends traffic to the proxy at addr.
func (m MachineSettings) PointsAt(addr string) bool {
	return m.AccessType == AccessNamed && sameProxy(m.Proxy, addr)
}

// MachineStore is the machine's WinHTTP proxy
// (WinHttpGetDefaultProxyConfiguration and its Set). Set, RestoreRaw: ErrNeedsElevation
// without an elevated prompt.
type MachineStore interface {
	Get() (MachineSettings, error)
	Set(MachineSettings) error
	Raw() (RegValue, error) // the WinHttpSettings value
	RestoreRaw(RegValue) error
}

// Exempter manages AppContainer loopback exemptions
// (CheckNetIsolation.exe LoopbackExempt).
type Exempter interface {
	IsExempt(pkg string) (bool, error)
	Add(pkg string) error    // ErrNeedsElevation without an elevated prompt
	Remove(pkg string) error // the same
}

// sameProxy compares a proxy setting with the tap's address. A setting of
// the form "http=host:port;https=host:port" points at the tap when every
// entry does.
func sameProxy(setting, addr string) bool {
	setting = strings.TrimSpace(setting)
	if setting == "" || addr == "" {
		return false
	}
	for _, part := range strings.Split(setting, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, v, ok := strings.Cut(part, "="); ok {
			part = v
		}
		part = strings.TrimPrefix(strings.TrimPrefix(part, "http://"), "HTTP://")
		if !strings.EqualFold(strings.TrimSuffix(part, "/"), addr) {
			return false
		}
	}
	return true
}

// withLocal is a bypass list keeping the user's entries, in order, and
// adding "<local>" (host names without a dot) when it is missing. WinINET
// separates entries with ';'; WinHTTP accepts ';' and spaces.
func withLocal(bypass string) string {
	entries := strings.FieldsFunc(bypass, func(r rune) bool { return r == ';' || r == ' ' || r == '\t' })
	for _, e := range entries {
		if strings.EqualFold(e, "<local>") {
			return strings.Join(entries, ";")
		}
	}
	return strings.Join(append(entries, "<local>"), ";")
}
