package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/rules"
)

// TestNoticeTapAuthenticated: when the tap lent its own credentials to
// clients' exchanges, every format says so before the verdict, in the
// reader's language, and says more when NCSI probes were among them.
func TestNoticeTapAuthenticated(t *testing.T) {
	const (
		start  = `{"level":"info","ts":"2026-12-03T10:00:00Z","msg":"start","listen":"127.0.0.1:8080","parent":"proxy.corp.example:3128"}`
		client = `{"level":"info","ts":"2026-12-03T10:00:01Z","msg":"exchange","client":"10.0.0.5:50000","method":"GET","host":"intranet.example","port":80,"route":"parent","parent":"proxy.corp.example:3128","parent_auth":"tap","proxy_auth_scheme":"ntlm","outcome":"ok","class":"ok","status":200}`
		probe  = `{"level":"info","ts":"2026-12-03T10:00:02Z","msg":"exchange","client":"10.0.0.5:50001","method":"GET","host":"www.msftconnecttest.com","port":80,"route":"parent","parent":"proxy.corp.example:3128","parent_auth":"tap","outcome":"ok","class":"ok","status":200,"rule_id":"ncsi-connecttest-v4","rule_source":"ncsi","required":true,"probe":true}`
		relay  = `{"level":"info","ts":"2026-12-03T10:00:03Z","msg":"exchange","client":"10.0.0.6:50000","method":"GET","host":"intranet.example","port":80,"route":"parent","parent":"proxy.corp.example:3128","parent_auth":"relay","outcome":"ok","class":"ok","status":200}`
	)
	for _, tc := range []struct {
		name  string
		lines []string
		want  map[rules.Language]string // "" : no notice
	}{
		{"relay only", []string{start, relay}, map[rules.Language]string{rules.LangEN: "", rules.LangJA: ""}},
		{"clients", []string{start, client, relay}, map[rules.Language]string{
			rules.LangEN: "for 1 client exchanges that carried none", rules.LangJA: "通信 1 件について"}},
		{"clients and ncsi", []string{start, client, probe, relay}, map[rules.Language]string{
			rules.LangEN: "1 of them NCSI probe requests", rules.LangJA: "うち NCSI のプローブ 1 件"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Aggregate
			if _, err := a.Read(strings.NewReader(strings.Join(tc.lines, "\n") + "\n")); err != nil {
				t.Fatal(err)
			}
			for lang, want := range tc.want {
				s := a.Summary(lang)
				for _, f := range []Format{FormatText, FormatMarkdown, FormatHTML, FormatJSON} {
					var b bytes.Buffer
					if err := s.Write(&b, f); err != nil {
						t.Fatal(err)
					}
					out := b.String()
					if want == "" {
						if strings.Contains(out, "tap_authenticated") || strings.Contains(out, "parent.auth.clients") {
							t.Errorf("%s %s: notice without tap credentials", lang, f)
						}
						continue
					}
					i := strings.Index(out, want)
					if i < 0 {
						t.Errorf("%s %s: no notice %q in\n%s", lang, f, want, out)
						continue
					}
					if f == FormatJSON {
						continue
					}
					// Before the verdict: the reader learns first what the run hides.
					if v := strings.Index(out, s.printer().T("verdict.title", nil)); f != FormatText && v >= 0 && v < i {
						t.Errorf("%s %s: notice after the verdict", lang, f)
					}
				}
			}
		})
	}
}

// TestReportNamesThePAC: with parent.pac the report names the PAC and its
// hash, says when it could not be loaded, and gives the PAC's answer
// behind a failure.
func TestReportNamesThePAC(t *testing.T) {
	const (
		start   = `{"level":"info","ts":"2026-12-03T10:00:00Z","msg":"start","listen":"127.0.0.1:8080","parent":"proxy.corp.example:3128"}`
		loaded  = `{"level":"info","ts":"2026-12-03T10:00:00Z","msg":"pac_loaded","pac":"http://wpad.corp.example/wpad.dat","pac_sha256":"0123456789abcdef0123","pac_size":900,"pac_function":"FindProxyForURL"}`
		failed  = `{"level":"warn","ts":"2026-12-03T10:00:00Z","msg":"pac_failed","pac":"http://wpad.corp.example/wpad.dat","error":"fetch failed","cause_id":"device-proxy-settings"}`
		failure = `{"level":"warn","ts":"2026-12-03T10:00:01Z","msg":"exchange","client":"10.0.0.5:50000","method":"CONNECT","host":"login.microsoftonline.com","port":443,"route":"parent","parent":"10.9.9.9:8080","pac_result":"PROXY 10.9.9.9:8080","outcome":"parent_unreachable","class":"failed","status":502,"rule_id":"56","rule_source":"catalogue","service_area":"Common","required":true,"cause_id":"device-proxy-settings"}`
	)
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string
	}{
		{"loaded", []string{start, loaded, failure}, []string{"http://wpad.corp.example/wpad.dat, SHA-256 0123456789ab", "(the PAC answered PROXY 10.9.9.9:8080)"}},
		{"never loaded", []string{start, failed, failure}, []string{"could not be loaded (1 failed loads)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Aggregate
			if _, err := a.Read(strings.NewReader(strings.Join(tc.lines, "\n") + "\n")); err != nil {
				t.Fatal(err)
			}
			for _, f := range []Format{FormatText, FormatHTML} {
				var b bytes.Buffer
				if err := a.Summary(rules.LangEN).Write(&b, f); err != nil {
					t.Fatal(err)
				}
				for _, w := range tc.want {
					if !strings.Contains(b.String(), w) {
						t.Errorf("%s: %q missing in\n%s", f, w, b.String())
					}
				}
			}
			var b bytes.Buffer
			if err := a.Summary(rules.LangJA).Write(&b, FormatText); err != nil || !strings.Contains(b.String(), "PAC ファイル (parent.pac)") {
				t.Errorf("Japanese: %v\n%s", err, b.String())
			}
		})
	}
}

// TestFactTLSInspectionIssuer: a certificate rejection (cause
// tls-inspection) is joined with the issuer of what was shown; with the
// active probe's tls_trusted false, it says the tap machine's roots do not
// trust it; when PCs were shown different issuers, each is named with the
// PCs (and the probe) it was shown to, not the last one for all.
func TestFactTLSInspectionIssuer(t *testing.T) {
	const (
		pc1   = `{"level":"warn","ts":"2026-12-03T10:00:01Z","msg":"exchange","client":"10.0.0.5:50000","method":"CONNECT","host":"login.microsoftonline.com","port":443,"route":"direct","outcome":"tls_failure","class":"failed","tls_version":"1.2","tls_alert":"bad_certificate","tls_issuer":"CN=Contoso Inspection CA,O=Contoso","rule_id":"56","rule_source":"catalogue","service_area":"Common","required":true,"cause_id":"tls-inspection"}`
		pc2   = `{"level":"warn","ts":"2026-12-03T10:00:02Z","msg":"exchange","client":"10.0.0.6:50001","method":"CONNECT","host":"login.microsoftonline.com","port":443,"route":"direct","outcome":"tls_failure","class":"failed","tls_version":"1.2","tls_alert":"unknown_ca","tls_issuer":"CN=Branch Firewall CA","rule_id":"56","rule_source":"catalogue","service_area":"Common","required":true,"cause_id":"tls-inspection"}`
		probe = `{"level":"warn","ts":"2026-12-03T10:00:03Z","msg":"exchange","client":"","method":"CONNECT","host":"login.microsoftonline.com","port":443,"route":"direct","outcome":"tls_failure","class":"failed","tls_alert":"bad_certificate","tls_issuer":"CN=Contoso Inspection CA,O=Contoso","tls_trusted":false,"rule_id":"56","rule_source":"catalogue","service_area":"Common","required":true,"probe_check":"tls","cause_id":"tls-inspection"}`
	)
	cases := []struct {
		name    string
		records []string
		want    map[rules.Language][]string
		absent  []string
		issuers int
	}{
		{"one PC, TLS 1.2", []string{pc1}, map[rules.Language][]string{
			rules.LangEN: {`login.microsoftonline.com: the certificate that was rejected was issued by "CN=Contoso Inspection CA,O=Contoso". When`},
			rules.LangJA: {"login.microsoftonline.com: 拒否された証明書の発行者は「CN=Contoso Inspection CA,O=Contoso」です。"},
		}, []string{"not trusted"}, 1},
		{"the PC and the probe, one issuer the tap's roots do not trust", []string{pc1, probe}, map[rules.Language][]string{
			rules.LangEN: {`issued by "CN=Contoso Inspection CA,O=Contoso" (not trusted by the root certificates of the machine the tap runs on). When`},
			rules.LangJA: {"「CN=Contoso Inspection CA,O=Contoso」 (m365tap を実行しているコンピューターの信頼されたルート証明書では検証できない発行者)です。"},
		}, nil, 1},
		{"two PCs behind different devices", []string{pc1, pc2, probe}, map[rules.Language][]string{
			rules.LangEN: {`login.microsoftonline.com: the certificates that were rejected came from 2 issuers, so the PCs do not all pass the same device: ` +
				`"CN=Contoso Inspection CA,O=Contoso" (not trusted by the root certificates of the machine the tap runs on) shown to PC-RECEPTION (10.0.0.5), the tap's active probe / ` +
				`"CN=Branch Firewall CA" shown to 10.0.0.6.`},
			rules.LangJA: {"拒否された証明書の発行者は 2 種類あり", "「CN=Branch Firewall CA」 (提示先: 10.0.0.6)"},
		}, []string{"the certificate that was rejected was issued by"}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := Aggregate{Names: map[string]string{"10.0.0.5": "PC-RECEPTION"}}
			if _, err := a.Read(strings.NewReader(strings.Join(tc.records, "\n") + "\n")); err != nil {
				t.Fatal(err)
			}
			for lang, wants := range tc.want {
				var b bytes.Buffer
				if err := a.Summary(lang).Write(&b, FormatText); err != nil {
					t.Fatal(err)
				}
				for _, want := range wants {
					if !strings.Contains(b.String(), want) {
						t.Errorf("%s: %q missing in\n%s", lang, want, b.String())
					}
				}
				for _, no := range tc.absent {
					if strings.Contains(b.String(), no) {
						t.Errorf("%s: %q in\n%s", lang, no, b.String())
					}
				}
			}
			var login *EndpointSummary
			for i, e := range a.Summary(rules.LangEN).Endpoints {
				if e.Host == "login.microsoftonline.com" {
					login = &a.Summary(rules.LangEN).Endpoints[i]
				}
			}
			if login == nil || len(login.TLSIssuers) != tc.issuers {
				t.Fatalf("endpoint issuers: %+v", login)
			}
			if is := login.TLSIssuers[0]; len(is.PCs) != 1 || is.PCs[0] != "10.0.0.5" {
				t.Errorf("first issuer seen by %v, want 10.0.0.5", is.PCs)
			}
		})
	}
}
