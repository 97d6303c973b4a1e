package sysproxy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/winetest"
)

// fakeUser is a WinINET with a LAN and VPN connections; raw holds each
// connection's registry values, which Set changes the way WinINET does
// (a new blob), so a restore must put the exact old bytes back.
type fakeUser struct {
	conns     []string
	settings  map[string]ConnSettings
	raw       map[string][]RegValue
	notified  int
	notifyErr error
	setErr    error
}

func newFakeUser() *fakeUser {
	return &fakeUser{
		conns: []string{"", "Contoso VPN", "Dial-up"},
		settings: map[string]ConnSettings{
			"":            {Flags: ProxyTypeDirect | ProxyTypeAutoProxyURL, AutoConfigURL: "http://wpad.contoso.com/proxy.pac", Bypass: "*.contoso.com"},
			"Contoso VPN": {Flags: ProxyTypeDirect | ProxyTypeProxy, Server: "proxy.contoso.com:8080", Bypass: "<local>;10.*"},
			"Dial-up":     {Flags: ProxyTypeDirect},
		},
		raw: map[string][]RegValue{
			"":            {{Name: "DefaultConnectionSettings", Type: 3, Data: []byte{0x46, 0, 0, 0, 7, 0, 0, 0}}, {Name: "ProxyEnable", Type: 4, Data: []byte{0, 0, 0, 0}}, {Name: "ProxyServer", Absent: true}},
			"Contoso VPN": {{Name: "Contoso VPN", Type: 3, Data: []byte{0x46, 0, 0, 0, 3, 0, 0, 0, 1}}},
			"Dial-up":     {{Name: "Dial-up", Type: 3, Data: []byte{0x46, 0, 0, 0, 9, 0, 0, 0}}},
		},
	}
}

func (f *fakeUser) Connections() ([]string, error) { return f.conns, nil }
func (f *fakeUser) Query(c string) (ConnSettings, error) {
	s, ok := f.settings[c]
	if !ok {
		return ConnSettings{}, errors.New("no such connection")
	}
	return s, nil
}
func (f *fakeUser) Set(c string, s ConnSettings) error {
	if f.setErr != nil {
		return f.setErr
	}
	f.settings[c] = s
	// WinINET rewrites the blob with a new counter.
	vals := append([]RegValue(nil), f.raw[c]...)
	vals[0] = RegValue{Name: vals[0].Name, Type: 3, Data: []byte{0x46, 0, 0, 0, 99, 0, 0, 0, byte(len(s.Server))}}
	f.raw[c] = vals
	return nil
}
func (f *fakeUser) Notify() error { f.notified++; return f.notifyErr }
func (f *fakeUser) Raw(c string) ([]RegValue, error) {
	return append([]RegValue(nil), f.raw[c]...), nil
}
func (f *fakeUser) RestoreRaw(c string, v []RegValue) error {
	f.raw[c] = append([]RegValue(nil), v...)
	return nil
}

type fakeMachine struct {
	s        MachineSettings
	raw      RegValue
	elevated bool
}

func (f *fakeMachine) Get() (MachineSettings, error) { return f.s, nil }
func (f *fakeMachine) Set(s MachineSettings) error {
	if !f.elevated {
		return ErrNeedsElevation
	}
	f.s = s
	f.raw = RegValue{Name: "WinHttpSettings", Type: 3, Data: []byte(s.Proxy)}
	return nil
}
func (f *fakeMachine) Raw() (RegValue, error) { return f.raw, nil }
func (f *fakeMachine) RestoreRaw(v RegValue) error {
	if !f.elevated {
		return ErrNeedsElevation
	}
	f.raw = v
	return nil
}

type fakeExempt struct {
	exempt   map[string]bool
	elevated bool
}

func (f *fakeExempt) IsExempt(p string) (bool, error) { return f.exempt[p], nil }
func (f *fakeExempt) Add(p string) error {
	if !f.elevated {
		return ErrNeedsElevation
	}
	f.exempt[p] = true
	return nil
}
func (f *fakeExempt) Remove(p string) error {
	if !f.elevated {
		return ErrNeedsElevation
	}
	delete(f.exempt, p)
	return nil
}

const tap = "127.0.0.1:8080"

func newSystem(t *testing.T, elevated bool) (*System, *fakeUser, *fakeMachine, *fakeExempt) {
	u := newFakeUser()
	m := &fakeMachine{s: MachineSettings{AccessType: AccessNoProxy}, raw: RegValue{Name: "WinHttpSettings", Absent: true}, elevated: elevated}
	e := &fakeExempt{exempt: map[string]bool{}, elevated: elevated}
	return &System{User: u, Machine: m, Exempt: e, Backup: filepath.Join(winetest.TempDir(t), "m365tap", "backup.json"),
		Now: func() time.Time { return time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC) }}, u, m, e
}

func results(steps []Step) map[string]Result {
	out := map[string]Result{}
	for _, s := range steps {
		out[string(s.Store)+"/"+s.Conn] = s.Result
	}
	return out
}

// TestOnOffRestoresExactly: On points every connection and WinHTTP at the
// tap, bypass lists keeping the user's entries plus <local>, and adds the
// broker's exemption; Off puts back the exact settings and registry bytes
// and removes what On added, then the backup.
func TestOnOffRestoresExactly(t *testing.T) {
	s, u, m, e := newSystem(t, true)
	beforeSettings := clone(u.settings)
	beforeRaw := cloneRaw(u.raw)
	beforeMachine, beforeMachineRaw := m.s, m.raw

	steps, err := s.On(tap, true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Result{"wininet/": Changed, "wininet/Contoso VPN": Changed, "wininet/Dial-up": Changed, "winhttp/": Changed, "broker/": Changed}
	if got := results(steps); !reflect.DeepEqual(got, want) {
		t.Fatalf("On: %v, want %v", got, want)
	}
	for c, bypass := range map[string]string{"": "*.contoso.com;<local>", "Contoso VPN": "<local>;10.*", "Dial-up": "<local>"} {
		got := u.settings[c]
		if got.Flags != ProxyTypeDirect|ProxyTypeProxy || got.Server != tap || got.Bypass != bypass {
			t.Errorf("%q after On: %+v, want proxy %s bypass %s", c, got, tap, bypass)
		}
	}
	if m.s != (MachineSettings{AccessType: AccessNamed, Proxy: tap, Bypass: "<local>"}) {
		t.Errorf("WinHTTP after On: %+v", m.s)
	}
	if !e.exempt[BrokerPackage] || u.notified != 1 {
		t.Errorf("broker exempt %v, notified %d", e.exempt[BrokerPackage], u.notified)
	}
	if _, err := s.On(tap, true); !errors.Is(err, ErrBackupExists) {
		t.Errorf("second On: %v, want ErrBackupExists", err)
	}

	steps, err = s.Off()
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]Result{"wininet/": Restored, "wininet/Contoso VPN": Restored, "wininet/Dial-up": Restored, "winhttp/": Restored, "broker/": Restored}
	if got := results(steps); !reflect.DeepEqual(got, want) {
		t.Fatalf("Off: %v, want %v", got, want)
	}
	if !reflect.DeepEqual(u.settings, beforeSettings) || !reflect.DeepEqual(u.raw, beforeRaw) {
		t.Errorf("user settings not restored exactly:\n%+v\n%+v\nwant\n%+v\n%+v", u.settings, u.raw, beforeSettings, beforeRaw)
	}
	if m.s != beforeMachine || !reflect.DeepEqual(m.raw, beforeMachineRaw) {
		t.Errorf("WinHTTP not restored: %+v %+v", m.s, m.raw)
	}
	if e.exempt[BrokerPackage] {
		t.Error("the exemption On added is still there")
	}
	if _, err := os.Stat(s.Backup); !os.IsNotExist(err) {
		t.Errorf("backup still there after a full restore: %v", err)
	}
	if steps, err := s.Off(); err != nil || len(steps) != 0 {
		t.Errorf("Off without a backup: %v %v", steps, err)
	}
}

// TestOffAfterCrash: a new System (a new process after a crash or power
// loss) finds the backup and restores from it alone.
func TestOffAfterCrash(t *testing.T) {
	s, u, _, _ := newSystem(t, true)
	beforeRaw := cloneRaw(u.raw)
	if _, err := s.On(tap, false); err != nil {
		t.Fatal(err)
	}
	again := &System{User: s.User, Machine: s.Machine, Exempt: s.Exempt, Backup: s.Backup}
	if _, err := again.Off(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u.raw, beforeRaw) {
		t.Errorf("not restored after the crash: %+v", u.raw)
	}
}

// TestOffLeavesOthersChanges: a setting someone changed after On is left
// as it is, and does not keep the backup alive.
func TestOffLeavesOthersChanges(t *testing.T) {
	s, u, _, _ := newSystem(t, true)
	if _, err := s.On(tap, false); err != nil {
		t.Fatal(err)
	}
	other := ConnSettings{Flags: ProxyTypeDirect | ProxyTypeProxy, Server: "fiddler.local:8888"}
	u.settings["Contoso VPN"] = other
	steps, err := s.Off()
	if err != nil {
		t.Fatal(err)
	}
	if r := results(steps)["wininet/Contoso VPN"]; r != LeftAlone {
		t.Errorf("changed connection: %s, want left_alone", r)
	}
	if u.settings["Contoso VPN"] != other {
		t.Errorf("someone else's setting was changed: %+v", u.settings["Contoso VPN"])
	}
	if _, err := os.Stat(s.Backup); !os.IsNotExist(err) {
		t.Errorf("backup kept: %v", err)
	}
}

// TestOnWithoutElevation: WinHTTP and the exemption need an elevated
// prompt; the user's part is done, the rest reported and left out of the
// backup, so Off restores only what On changed.
func TestOnWithoutElevation(t *testing.T) {
	s, u, m, e := newSystem(t, false)
	steps, err := s.On(tap, true)
	if err != nil {
		t.Fatal(err)
	}
	got := results(steps)
	if got["winhttp/"] != NeedsElevation || got["broker/"] != NeedsElevation || got["wininet/"] != Changed {
		t.Fatalf("On without elevation: %v", got)
	}
	bk, err := readBackup(s.Backup)
	if err != nil || bk.Machine != nil || bk.BrokerExemptAdded {
		t.Fatalf("backup %+v %v: want no machine part and no exemption", bk, err)
	}
	steps, err = s.Off()
	if err != nil {
		t.Fatal(err)
	}
	got = results(steps)
	if _, ok := got["winhttp/"]; ok {
		t.Errorf("Off touched WinHTTP, which On could not change: %v", got)
	}
	if m.s.AccessType != AccessNoProxy || len(e.exempt) != 0 || u.settings[""].Server != "" {
		t.Errorf("after Off: machine %+v exempt %v lan %+v", m.s, e.exempt, u.settings[""])
	}
}

// TestOffWithoutElevationKeepsPending: a restore that needs elevation stays
// in the backup for the next Off; the rest is done and dropped from it.
func TestOffWithoutElevationKeepsPending(t *testing.T) {
	s, _, m, _ := newSystem(t, true)
	if _, err := s.On(tap, false); err != nil {
		t.Fatal(err)
	}
	m.elevated = false
	steps, err := s.Off()
	if err != nil {
		t.Fatal(err)
	}
	if r := results(steps)["winhttp/"]; r != NeedsElevation {
		t.Fatalf("winhttp %s, want needs_elevation", r)
	}
	bk, err := readBackup(s.Backup)
	if err != nil || bk == nil || bk.Machine == nil || len(bk.User) != 0 {
		t.Fatalf("pending backup %+v %v: want the machine part only", bk, err)
	}
	m.elevated = true
	if _, err := s.Off(); err != nil {
		t.Fatal(err)
	}
	if m.s.AccessType != AccessNoProxy {
		t.Errorf("WinHTTP %+v after the elevated Off", m.s)
	}
}

// TestDamagedBackup: a backup that does not parse stops On and Off with a
// message that says what to do; nothing is changed.
func TestDamagedBackup(t *testing.T) {
	s, u, _, _ := newSystem(t, true)
	os.MkdirAll(filepath.Dir(s.Backup), 0o700)
	os.WriteFile(s.Backup, []byte("{half"), 0o600)
	before := clone(u.settings)
	for name, f := range map[string]func() ([]Step, error){"on": func() ([]Step, error) { return s.On(tap, false) }, "off": s.Off} {
		if _, err := f(); err == nil {
			t.Errorf("%s with a damaged backup: no error", name)
		}
	}
	if !reflect.DeepEqual(u.settings, before) {
		t.Error("settings changed despite the damaged backup")
	}
}

func TestWithLocalAndSameProxy(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "<local>",
		"*.contoso.com":             "*.contoso.com;<local>",
		"<local>;10.*":              "<local>;10.*",
		"a.example b.example":       "a.example;b.example;<local>",
		"*.contoso.com;<LOCAL>;x.y": "*.contoso.com;<LOCAL>;x.y",
	} {
		if got := withLocal(in); got != want {
			t.Errorf("withLocal(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct {
		setting string
		want    bool
	}{
		{"127.0.0.1:8080", true},
		{"http://127.0.0.1:8080", true},
		{"http=127.0.0.1:8080;https=127.0.0.1:8080", true},
		{"http=127.0.0.1:8080;https=proxy.contoso.com:8080", false},
		{"127.0.0.1:80800", false},
		{"", false},
	} {
		if got := sameProxy(tc.setting, tap); got != tc.want {
			t.Errorf("sameProxy(%q) = %v", tc.setting, got)
		}
	}
}

func clone(m map[string]ConnSettings) map[string]ConnSettings {
	out := map[string]ConnSettings{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneRaw(m map[string][]RegValue) map[string][]RegValue {
	out := map[string][]RegValue{}
	for k, v := range m {
		out[k] = append([]RegValue(nil), v...)
	}
	return out
}
