package sysproxy

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// New returns the PC's settings: WinINET for the user, WinHTTP for the
// machine, CheckNetIsolation for the broker, guarded by the backup file.
func New(backup string) (*System, error) {
	return &System{User: winINET{}, Machine: winHTTP{}, Exempt: NetIsolation{}, Backup: backup}, nil
}

var (
	wininet                          = windows.NewLazySystemDLL("wininet.dll")
	procInternetQueryOptionW         = wininet.NewProc("InternetQueryOptionW")
	procInternetSetOptionW           = wininet.NewProc("InternetSetOptionW")
	winhttp                          = windows.NewLazySystemDLL("winhttp.dll")
	procWinHttpGetDefaultProxyConfig = winhttp.NewProc("WinHttpGetDefaultProxyConfiguration")
	procWinHttpSetDefaultProxyConfig = winhttp.NewProc("WinHttpSetDefaultProxyConfiguration")
	advapi32                         = windows.NewLazySystemDLL("advapi32.dll")
	procRegSetValueExW               = advapi32.NewProc("RegSetValueExW")
	kernel32                         = windows.NewLazySystemDLL("kernel32.dll")
	procGlobalFree                   = kernel32.NewProc("GlobalFree")
)

// wininet.h
const (
	internetOptionRefresh         = 37
	internetOptionSettingsChanged = 39
	internetOptionPerConnection   = 75
	internetPerConnFlags          = 1
	internetPerConnProxyServer    = 2
	internetPerConnProxyBypass    = 3
	internetPerConnAutoconfigURL  = 4
	internetSettingsKey           = `Software\Microsoft\Windows\CurrentVersion\Internet Settings`
	connectionsKey                = internetSettingsKey + `\Connections`
	lanBlob                       = "DefaultConnectionSettings"
	legacyBlob                    = "SavedLegacySettings"
	winHTTPValue                  = "WinHttpSettings"
)

// INTERNET_PER_CONN_OPTIONW: a DWORD, then a union of DWORD, LPWSTR and
// FILETIME at offset 8 on 64-bit Windows.
type perConnOption struct {
	option uint32
	value  uintptr
}

// INTERNET_PER_CONN_OPTION_LISTW.
type perConnOptionList struct {
	size        uint32
	connection  *uint16
	optionCount uint32
	optionError uint32
	options     *perConnOption
}

type winINET struct{}

// Connections is the LAN and every dial-up/VPN entry: WinINET keeps one
// settings blob per entry, named after it, beside the LAN's.
func (winINET) Connections() ([]string, error) {
	conns := []string{""}
	k, err := registry.OpenKey(registry.CURRENT_USER, connectionsKey, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return conns, nil
	}
	if err != nil {
		return nil, fmt.Errorf(`HKCU\%s: %w`, connectionsKey, err)
	}
	defer k.Close()
	names, err := k.ReadValueNames(-1)
	if err != nil {
		return nil, fmt.Errorf(`HKCU\%s: %w`, connectionsKey, err)
	}
	for _, n := range names {
		if n != lanBlob && n != legacyBlob && n != "" {
			conns = append(conns, n)
		}
	}
	return conns, nil
}

func connPtr(conn string) *uint16 {
	if conn == "" {
		return nil // the LAN
	}
	p, _ := windows.UTF16PtrFromString(conn)
	return p
}

func (winINET) Query(conn string) (ConnSettings, error) {
	opts := []perConnOption{{option: internetPerConnFlags}, {option: internetPerConnProxyServer},
		{option: internetPerConnProxyBypass}, {option: internetPerConnAutoconfigURL}}
	list := perConnOptionList{connection: connPtr(conn), optionCount: uint32(len(opts)), options: &opts[0]}
	list.size = uint32(unsafe.Sizeof(list))
	size := list.size
	r, _, err := procInternetQueryOptionW.Call(0, internetOptionPerConnection, uintptr(unsafe.Pointer(&list)), uintptr(unsafe.Pointer(&size)))
	if r == 0 {
		return ConnSettings{}, fmt.Errorf("InternetQueryOptionW(%s): %w", connName(conn), err)
	}
	s := ConnSettings{Flags: uint32(opts[0].value)}
	s.Server = takeString(strAt(&opts[1].value))
	s.Bypass = takeString(strAt(&opts[2].value))
	s.AutoConfigURL = takeString(strAt(&opts[3].value))
	return s, nil
}

// takeString copies a string WinINET or WinHTTP allocated for the caller
// and frees it (GlobalFree, as both document).
func takeString(p *uint16) string {
	if p == nil {
		return ""
	}
	s := windows.UTF16PtrToString(p)
	procGlobalFree.Call(uintptr(unsafe.Pointer(p)))
	return s
}

// strAt reads the union's LPWSTR member.
func strAt(v *uintptr) *uint16 { return *(**uint16)(unsafe.Pointer(v)) }

func (winINET) Set(conn string, s ConnSettings) error {
	server, _ := windows.UTF16PtrFromString(s.Server)
	bypass, _ := windows.UTF16PtrFromString(s.Bypass)
	pac, _ := windows.UTF16PtrFromString(s.AutoConfigURL)
	opts := []perConnOption{
		{option: internetPerConnFlags, value: uintptr(s.Flags)},
		{option: internetPerConnProxyServer, value: uintptr(unsafe.Pointer(server))},
		{option: internetPerConnProxyBypass, value: uintptr(unsafe.Pointer(bypass))},
		{option: internetPerConnAutoconfigURL, value: uintptr(unsafe.Pointer(pac))},
	}
	list := perConnOptionList{connection: connPtr(conn), optionCount: uint32(len(opts)), options: &opts[0]}
	list.size = uint32(unsafe.Sizeof(list))
	r, _, err := procInternetSetOptionW.Call(0, internetOptionPerConnection, uintptr(unsafe.Pointer(&list)), uintptr(list.size))
	// The strings are reachable only through uintptrs in opts.
	runtime.KeepAlive(server)
	runtime.KeepAlive(bypass)
	runtime.KeepAlive(pac)
	if r == 0 {
		return fmt.Errorf("InternetSetOptionW(%s): %w", connName(conn), err)
	}
	return nil
}

// Notify: running programs reread the settings. Both calls are made even
// when the first fails (wine fails the refresh with error 12018).
func (winINET) Notify() error {
	var errs []error
	for _, o := range []struct {
		opt  uintptr
		name string
	}{{internetOptionSettingsChanged, "INTERNET_OPTION_SETTINGS_CHANGED"}, {internetOptionRefresh, "INTERNET_OPTION_REFRESH"}} {
		if r, _, err := procInternetSetOptionW.Call(0, o.opt, 0, 0); r == 0 {
			errs = append(errs, fmt.Errorf("InternetSetOptionW(%s): %w", o.name, err))
		}
	}
	return errors.Join(errs...)
}

// rawNames is where a connection's settings live in HKCU: its blob, and
// for the LAN also the legacy blob and the values older programs read.
func rawNames(conn string) []string {
	if conn != "" {
		return []string{`Connections\` + conn}
	}
	return []string{`Connections\` + lanBlob, `Connections\` + legacyBlob, "ProxyEnable", "ProxyServer", "ProxyOverride", "AutoConfigURL"}
}

func (winINET) Raw(conn string) ([]RegValue, error) {
	var out []RegValue
	for _, n := range rawNames(conn) {
		v, err := readValue(registry.CURRENT_USER, internetSettingsKey, n)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (winINET) RestoreRaw(conn string, vals []RegValue) error {
	for _, v := range vals {
		if err := writeValue(registry.CURRENT_USER, internetSettingsKey, v); err != nil {
			return err
		}
	}
	return nil
}

// readValue reads name (which may start with a subkey, `Connections\X`)
// under root\key exactly: type and bytes, or absent.
func readValue(root registry.Key, key, name string) (RegValue, error) {
	sub, val := splitName(key, name)
	k, err := registry.OpenKey(root, sub, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return RegValue{Name: name, Absent: true}, nil
	}
	if err != nil {
		return RegValue{}, fmt.Errorf(`%s\%s: %w`, rootName(root), sub, err)
	}
	defer k.Close()
	n, typ, err := k.GetValue(val, nil)
	if errors.Is(err, registry.ErrNotExist) {
		return RegValue{Name: name, Absent: true}, nil
	}
	if err != nil && !errors.Is(err, windows.ERROR_MORE_DATA) && !errors.Is(err, syscall.ERROR_MORE_DATA) {
		return RegValue{}, fmt.Errorf(`%s\%s\%s: %w`, rootName(root), sub, val, err)
	}
	buf := make([]byte, n)
	if n > 0 {
		if _, typ, err = k.GetValue(val, buf); err != nil {
			return RegValue{}, fmt.Errorf(`%s\%s\%s: %w`, rootName(root), sub, val, err)
		}
	}
	return RegValue{Name: name, Type: typ, Data: buf}, nil
}

// writeValue puts v back exactly: the same type and bytes, or no value.
func writeValue(root registry.Key, key string, v RegValue) error {
	sub, val := splitName(key, v.Name)
	k, _, err := registry.CreateKey(root, sub, registry.SET_VALUE)
	if err != nil {
		return elevation(fmt.Errorf(`%s\%s: %w`, rootName(root), sub, err))
	}
	defer k.Close()
	if v.Absent {
		if err := k.DeleteValue(val); err != nil && !errors.Is(err, registry.ErrNotExist) {
			return elevation(fmt.Errorf(`delete %s\%s\%s: %w`, rootName(root), sub, val, err))
		}
		return nil
	}
	name, _ := windows.UTF16PtrFromString(val)
	var data *byte
	if len(v.Data) > 0 {
		data = &v.Data[0]
	}
	r, _, _ := procRegSetValueExW.Call(uintptr(k), uintptr(unsafe.Pointer(name)), 0, uintptr(v.Type),
		uintptr(unsafe.Pointer(data)), uintptr(len(v.Data)))
	if r != 0 {
		return elevation(fmt.Errorf(`%s\%s\%s: %w`, rootName(root), sub, val, syscall.Errno(r)))
	}
	return nil
}

func splitName(key, name string) (sub, val string) {
	if i := strings.LastIndexByte(name, '\\'); i >= 0 {
		return key + `\` + name[:i], name[i+1:]
	}
	return key, name
}

func rootName(root registry.Key) string {
	if root == registry.LOCAL_MACHINE {
		return "HKLM"
	}
	return "HKCU"
}

// elevation marks access denied as ErrNeedsElevation.
func elevation(err error) error {
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return fmt.Errorf("%w: %v", ErrNeedsElevation, err)
	}
	return err
}

// WINHTTP_PROXY_INFO.
type winHTTPProxyInfo struct {
	accessType  uint32
	proxy       *uint16
	proxyBypass *uint16
}

type winHTTP struct{}

func (winHTTP) Get() (MachineSettings, error) {
	var info winHTTPProxyInfo
	r, _, err := procWinHttpGetDefaultProxyConfig.Call(uintptr(unsafe.Pointer(&info)))
	if r == 0 {
		return MachineSettings{}, fmt.Errorf("WinHttpGetDefaultProxyConfiguration: %w", err)
	}
	return MachineSettings{AccessType: info.accessType,
		Proxy:  takeString(info.proxy),
		Bypass: takeString(info.proxyBypass)}, nil
}

func (winHTTP) Set(m MachineSettings) error {
	info := winHTTPProxyInfo{accessType: m.AccessType}
	if m.AccessType == AccessNamed {
		info.proxy, _ = windows.UTF16PtrFromString(m.Proxy)
		if m.Bypass != "" {
			info.proxyBypass, _ = windows.UTF16PtrFromString(m.Bypass)
		}
	}
	if info.accessType == AccessDefault {
		// Not a value to set: the registry's absence means it, which
		// RestoreRaw puts back.
		info.accessType = AccessNoProxy
	}
	r, _, err := procWinHttpSetDefaultProxyConfig.Call(uintptr(unsafe.Pointer(&info)))
	if r == 0 {
		return elevation(fmt.Errorf("WinHttpSetDefaultProxyConfiguration: %w", err))
	}
	return nil
}

func (winHTTP) Raw() (RegValue, error) {
	return readValue(registry.LOCAL_MACHINE, internetSettingsKey, `Connections\`+winHTTPValue)
}

func (winHTTP) RestoreRaw(v RegValue) error {
	return writeValue(registry.LOCAL_MACHINE, internetSettingsKey, v)
}
