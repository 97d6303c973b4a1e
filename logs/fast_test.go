package logs

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// The hand-written parsers the encoders use instead of the standard
// library's must decide exactly as it does.

var addrInputs = []string{
	"", "1.2.3.4", "127.0.0.1", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "0.0.0.0",
	"1.2.3.04", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4%eth0", "1234.1.1.1", "::1", "2001:db8::10", "fe80::1%eth0",
	"::ffff:1.2.3.4", "cafe.de", "example.com", "a", "%", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "١.٢.٣.٤",
	"0", "00", "65535", "65536", "080", "+80", "-1", "99999999999999999999", "1_000",
}

func TestIsIPLiteralMatchesNetip(t *testing.T) {
	for _, s := range addrInputs {
		_, err := netip.ParseAddr(s)
		if got := isIPLiteral(s); got != (err == nil) {
			t.Errorf("isIPLiteral(%q) = %v, netip says %v", s, got, err)
		}
	}
}

func TestParsePortMatchesStrconv(t *testing.T) {
	for _, s := range addrInputs {
		n, err := strconv.ParseUint(s, 10, 16)
		got, ok := parsePort(s)
		if ok != (err == nil) || ok && got != int64(n) {
			t.Errorf("parsePort(%q) = %d, %v; strconv %d, %v", s, got, ok, n, err)
		}
	}
}

func FuzzIPLiteralAndPort(f *testing.F) {
	for _, s := range addrInputs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := netip.ParseAddr(s)
		if got := isIPLiteral(s); got != (err == nil) {
			t.Errorf("isIPLiteral(%q) = %v, netip says %v", s, got, err)
		}
		n, err := strconv.ParseUint(s, 10, 16)
		got, ok := parsePort(s)
		if ok != (err == nil) || ok && got != int64(n) {
			t.Errorf("parsePort(%q) = %d, %v; strconv %d, %v", s, got, ok, n, err)
		}
	})
}

func TestAppendTimestampNear(t *testing.T) {
	refs := []time.Time{fixedTime, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 24, 23, 59, 59, 999999999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0)}
	ds := []time.Duration{0, time.Microsecond, 208 * time.Microsecond, time.Second, 30 * time.Second, 16 * time.Hour, 24 * time.Hour, 48 * time.Hour, -time.Hour, -24 * time.Hour}
	for _, ref := range refs {
		refText := appendTimestamp(nil, ref)
		for _, d := range ds {
			at := ref.Add(-d)
			if got, want := string(appendTimestampNear(nil, at, ref, refText)), string(appendTimestamp(nil, at)); got != want {
				t.Errorf("%v minus %v: %s, want %s", ref, d, got, want)
			}
		}
	}
}

// TestAppendTimestampDayCache: the cached date is used only for its own
// day, forwards, backwards and across the range appendTimestamp writes by
// hand.
func TestAppendTimestampDayCache(t *testing.T) {
	times := []time.Time{fixedTime, fixedTime.Add(time.Hour), fixedTime.Add(8 * time.Hour), fixedTime.Add(-24 * time.Hour),
		fixedTime, time.Date(2000, 2, 29, 23, 59, 59, 999999999, time.UTC), time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 0), time.Unix(0, 0), fixedTime.In(time.FixedZone("x", -5*3600)), fixedTime}
	for range 2 {
		for _, at := range times {
			if got, want := string(appendTimestamp(nil, at)), at.UTC().Format(timeLayout); got != want {
				t.Errorf("%v: %s, want %s", at, got, want)
			}
		}
	}
}
