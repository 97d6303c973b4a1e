package config

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"time"
	// The PAC's date and time helpers run in the PC's zone (pac.timezone);
	// Windows has no zoneinfo files for time.LoadLocation to read.
	_ "time/tzdata"
)

// PAC tunes how the PAC named by parent.pac is evaluated.
type PAC struct {
	// MyIP is what the PAC's myIpAddress() answers for every client.
	// Empty: the client PC's address, the connection's source.
	MyIP string `mapstructure:"my_ip"`
	// Timezone is the IANA zone of the PAC's date and time helpers: the
	// PC's zone, such as Asia/Tokyo. Local: the tap's own zone.
	Timezone string `mapstructure:"timezone"`
	// Failover tries the PAC's next entry when connecting to the first
	// fails, as browsers do. Off: only the first entry is used, as WinHTTP
	// (and so Office and NCSI) does.
	Failover bool `mapstructure:"failover"`
	// EvalTimeout bounds one evaluation of the PAC, its DNS lookups
	// included.
	EvalTimeout time.Duration `mapstructure:"eval_timeout"`
	// Refresh fetches the PAC again this often (honouring ETag and
	// Last-Modified); 0s fetches it at start only.
	Refresh time.Duration `mapstructure:"refresh"`
}

// What each PAC rule allows; the bad-config fixtures pin every one.
const (
	allowPAC         = "want a file path or an http:// or https:// URL of a PAC file"
	allowMyIP        = "want an IP address such as 192.0.2.15, or empty for the client's own address"
	allowTimezone    = "want an IANA time zone such as Asia/Tokyo, or Local"
	allowEvalTimeout = "want a duration from 1ms to 30s, such as 2s"
	allowRefresh     = "want zero (fetch at start only) or a duration of 10s or more, such as 5m"
)

func (c *Config) validatePAC(add func(key, value, allowed string)) {
	if c.Parent.PAC != "" && !isPACLocation(c.Parent.PAC) {
		add("parent.pac", c.Parent.PAC, allowPAC)
	}
	if c.PAC.MyIP != "" {
		if a, err := netip.ParseAddr(c.PAC.MyIP); err != nil || a.Zone() != "" {
			add("pac.my_ip", c.PAC.MyIP, allowMyIP)
		}
	}
	if _, err := loadZone(c.PAC.Timezone); err != nil {
		add("pac.timezone", c.PAC.Timezone, allowTimezone)
	}
	// A PAC evaluation holds the request it decides for: 30 s is already
	// longer than any client waits.
	if c.PAC.EvalTimeout < time.Millisecond || c.PAC.EvalTimeout > 30*time.Second {
		add("pac.eval_timeout", c.PAC.EvalTimeout.String(), allowEvalTimeout)
	}
	// Refreshing more often than every 10 s would hammer the PAC server.
	if c.PAC.Refresh < 0 || c.PAC.Refresh != 0 && c.PAC.Refresh < 10*time.Second {
		add("pac.refresh", c.PAC.Refresh.String(), allowRefresh)
	}
}

// PACLocation is the zone of the PAC's date and time helpers
// (pac.timezone); time.Local for Local. Validate has checked it.
func (c *Config) PACLocation() *time.Location {
	loc, err := loadZone(c.PAC.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}

// PACMyIP is pac.my_ip, or the invalid address when it is empty (the
// client's own address is used then).
func (c *Config) PACMyIP() netip.Addr {
	a, _ := netip.ParseAddr(c.PAC.MyIP)
	return a.Unmap()
}

// isPACLocation accepts an http(s) URL with a host, or a file path. A
// password in the URL is allowed (and masked when shown).
func isPACLocation(s string) bool {
	if strings.TrimSpace(s) != s || s == "" {
		return false
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
			(u.Port() == "" || isPort(u.Port(), 1))
	}
	return !strings.ContainsAny(s, "\x00\n")
}

// loadZone reads a pac.timezone value.
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return nil, errors.New("empty zone")
	}
	return time.LoadLocation(name)
}
