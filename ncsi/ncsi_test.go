package ncsi

import (
	"errors"
	"reflect"
	"testing"

	"github.com/m365tap/m365tap/rules"
)

// fakeRegistry holds HKLM values by `key\name`: a string or a uint32.
type fakeRegistry map[string]any

func (f fakeRegistry) String(key, name string) (string, bool, error) {
	v, ok := f[key+`\`+name].(string)
	return v, ok, nil
}

func (f fakeRegistry) DWORD(key, name string) (uint32, bool, error) {
	v, ok := f[key+`\`+name].(uint32)
	return v, ok, nil
}

func TestReadDefaults(t *testing.T) {
	s, err := Read(fakeRegistry{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Web[0].URL(); got != "http://www.msftconnecttest.com/connecttest.txt" || s.Web[0].Custom {
		t.Errorf("IPv4 probe %s custom %v", got, s.Web[0].Custom)
	}
	if s.Web[1].Host != "ipv6.msftconnecttest.com" || s.DNS[1].Content != "fd3e:4f5a:5b81::1" {
		t.Errorf("IPv6 defaults: %+v %+v", s.Web[1], s.DNS[1])
	}
	if !s.ActiveProbing || s.PassivePollingOff || s.GlobalDNS {
		t.Errorf("policies on a PC without any: %+v", s)
	}
	if specs := s.ProbeSpecs(); len(specs) != 0 {
		t.Errorf("default settings give rules: %+v", specs)
	}
}

// TestCorporateProbeBecomesRule: a customised probe and a corporate
// website probe become rules that rules.Compile accepts and that match the
// PC's real probe; the probe rule carries the PC's expected text.
func TestCorporateProbeBecomesRule(t *testing.T) {
	reg := fakeRegistry{
		ParametersKey + `\ActiveWebProbeHost`:    "ncsi.contoso.com",
		ParametersKey + `\ActiveWebProbePath`:    "probe/ok.txt",
		ParametersKey + `\ActiveWebProbeContent`: "Contoso OK",
		PolicyKey + `\UseGlobalDns`:              uint32(1),
		CorporateKey + `\WebProbeUrl`:            "http://da-probe.corp.contoso.com/index.html",
	}
	s, err := Read(reg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Web[0].Custom || s.Web[1].Custom || !s.GlobalDNS {
		t.Fatalf("settings %+v", s)
	}
	specs := s.ProbeSpecs()
	ids := []string{}
	for _, sp := range specs {
		ids = append(ids, sp.ID)
	}
	if !reflect.DeepEqual(ids, []string{"pc-ncsi-web-ipv4", "pc-ncsi-corporate-web"}) {
		t.Fatalf("rules %v", ids)
	}
	set, err := rules.Compile(nil, specs)
	if err != nil {
		t.Fatalf("rules.Compile rejects the PC's probe rules: %v", err)
	}
	m := set.Match("ncsi.contoso.com", 80)
	if m.Rule == nil || m.Rule.ID != "pc-ncsi-web-ipv4" || m.Rule.Probe == nil {
		t.Fatalf("the PC's probe host matches %+v", m.Rule)
	}
	if p := m.Rule.Probe; p.Path != "/probe/ok.txt" || p.Content != "Contoso OK" {
		t.Errorf("probe expectation %+v", p)
	}
	if m := set.Match("da-probe.corp.contoso.com", 80); m.Rule == nil || m.Rule.ID != "pc-ncsi-corporate-web" {
		t.Errorf("corporate probe host matches %+v", m.Rule)
	}
}

func TestActiveProbingOff(t *testing.T) {
	for name, reg := range map[string]fakeRegistry{
		"EnableActiveProbing": {ParametersKey + `\EnableActiveProbing`: uint32(0)},
		"NoActiveProbe":       {PolicyKey + `\NoActiveProbe`: uint32(1)},
	} {
		s, err := Read(reg)
		if err != nil {
			t.Fatal(err)
		}
		if s.ActiveProbing || s.ActiveProbingOffBy == "" {
			t.Errorf("%s: active probing %v (%q)", name, s.ActiveProbing, s.ActiveProbingOffBy)
		}
	}
}

type failing struct{ fakeRegistry }

func (failing) String(key, name string) (string, bool, error) {
	return "", false, errors.New("access denied")
}

func TestReadError(t *testing.T) {
	if _, err := Read(failing{}); err == nil {
		t.Error("a registry error was swallowed")
	}
}
