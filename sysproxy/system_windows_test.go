package sysproxy

import "testing"

// TestSystemReads reads this PC's real settings (wine's in CI) without
// changing them: the LAN's WinINET settings, its registry values, the
// WinHTTP proxy. Changing them is left to the end-to-end test under wine,
// which owns its prefix.
func TestSystemReads(t *testing.T) {
	sys, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	conns, err := sys.User.Connections()
	if err != nil || len(conns) == 0 || conns[0] != "" {
		t.Fatalf("connections %q %v: want the LAN first", conns, err)
	}
	if _, err := sys.User.Query(""); err != nil {
		t.Errorf("LAN settings: %v", err)
	}
	raw, err := sys.User.Raw("")
	if err != nil || len(raw) != 6 {
		t.Errorf("LAN registry values %+v %v", raw, err)
	}
	if _, err := sys.Machine.Get(); err != nil {
		t.Errorf("WinHTTP proxy: %v", err)
	}
}
