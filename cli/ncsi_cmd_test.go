package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/ncsi"
	"github.com/m365tap/m365tap/rules"
	"github.com/m365tap/m365tap/sysproxy"
)

// TestPrintNCSI: what ncsi prints for a PC with a customised probe, in
// both languages: the URL NCSI fetches, the proxy it goes through, and the
// rule the tap recognises the probe by.
func TestPrintNCSI(t *testing.T) {
	s := &ncsi.Settings{
		ActiveProbing: true,
		Web: []ncsi.WebProbe{
			{Family: "IPv4", Host: "ncsi.contoso.com", Path: "probe.txt", Content: "Contoso OK", Custom: true},
			{Family: "IPv6", Host: "ipv6.msftconnecttest.com", Path: "connecttest.txt", Content: "Microsoft Connect Test"},
		},
		DNS: []ncsi.DNSProbe{{Family: "IPv4", Host: "dns.msftncsi.com", Content: "131.107.255.255"}},
	}
	for _, tc := range []struct {
		lang    rules.Language
		machine *sysproxy.MachineSettings
		err     error
		want    []string
	}{
		{rules.LangEN, &sysproxy.MachineSettings{AccessType: sysproxy.AccessNamed, Proxy: "127.0.0.1:8080", Bypass: "<local>"}, nil,
			[]string{"GET http://ncsi.contoso.com/probe.txt, expects \"Contoso OK\" (customised on this PC)",
				"WinHTTP proxy 127.0.0.1:8080 first", "rule pc-ncsi-web-ipv4 (ncsi.contoso.com)"}},
		{rules.LangEN, &sysproxy.MachineSettings{AccessType: sysproxy.AccessNoProxy}, nil, []string{"no WinHTTP proxy is set"}},
		{rules.LangEN, nil, errors.New("access denied"), []string{"could not be read (access denied)"}},
		{rules.LangJA, &sysproxy.MachineSettings{AccessType: sysproxy.AccessNoProxy}, nil,
			[]string{"この PC で変更されています", "WinHTTP プロキシが設定されていない", "ルール pc-ncsi-web-ipv4"}},
	} {
		var out bytes.Buffer
		printNCSI(&out, messages.For(tc.lang), s, tc.machine, tc.err)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.lang, w, out.String())
			}
		}
		if strings.Contains(out.String(), "!(") {
			t.Errorf("missing message id:\n%s", out.String())
		}
	}
}
