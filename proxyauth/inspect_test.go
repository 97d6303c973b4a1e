package proxyauth

import (
	"encoding/asn1"
	"encoding/base64"
	"os"
	"os/exec"
	"strings"
	"testing"

	ntlmssp "github.com/Azure/go-ntlmssp"
	gofork "github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/internal/testsquid/ntlm"
)

var b64 = base64.StdEncoding.EncodeToString

// ntlmTokens makes a real NEGOTIATE and AUTHENTICATE message pair with
// go-ntlmssp, the client library the tap itself uses.
func ntlmTokens(t testing.TB, user, password string) (type1, type3 []byte) {
	t.Helper()
	type1, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		t.Fatal(err)
	}
	type3, err = ntlmssp.NewAuthenticateMessage(ntlmChallenge(t), user, password, nil)
	if err != nil {
		t.Fatal(err)
	}
	return type1, type3
}

// ntlmChallenge is a CHALLENGE message from testsquid's NTLM server side.
func ntlmChallenge(t testing.TB) []byte {
	t.Helper()
	ch, err := ntlm.NewChallenge("CORP", "PROXY")
	if err != nil {
		t.Fatal(err)
	}
	return ch.Marshal()
}

// The Kerberos fixtures: alice in the test realm, and the service names a
// test asks tickets for: the parent's name, and the names a client uses
// when it is pointed at the tap as localhost or by address.
const (
	krbUser     = "alice"
	krbPassword = "alice-Pa55"
)

var krbServices = []string{"HTTP/proxy.corp.example", "HTTP/localhost", "HTTP/127.0.0.1"}

func startKDC(t testing.TB) *testsquid.KDC {
	t.Helper()
	k := testsquid.StartKDC(t)
	k.AddUser(krbUser, krbPassword)
	for _, s := range krbServices {
		k.AddService(s)
	}
	return k
}

func TestInspect(t *testing.T) {
	type1, type3 := ntlmTokens(t, `CORP\alice`, "alice-Pa55")
	_, type3NoDomain := ntlmTokens(t, "bob", "x")
	_, type3Unicode := ntlmTokens(t, `ＣＯＲＰ\山田`, "x")
	type2 := ntlmChallenge(t)
	// An AUTHENTICATE message from an old client: OEM strings, no flags field.
	oem := make([]byte, 52, 64)
	copy(oem, "NTLMSSP\x00")
	oem[8] = 3
	putField := func(off int, s string) {
		oem[off], oem[off+2] = byte(len(s)), byte(len(s))
		oem[off+4] = byte(len(oem))
		oem = append(oem, s...)
	}
	putField(28, "OLD")
	putField(36, "caf\xe9")

	resp := spnego.NegTokenResp{NegState: 1, ResponseToken: type3}
	respBytes, err := resp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ntlmOID := gofork.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}
	initTok := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{
		MechTypes: []gofork.ObjectIdentifier{ntlmOID}, MechTokenBytes: type1}}
	initBytes, err := initTok.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	long := "Negotiate " + strings.Repeat("A", MaxTokenLen+4)
	tests := []struct {
		name  string
		value string
		want  Credential
	}{
		{"empty", "", Credential{}},
		{"basic", "Basic " + b64([]byte("alice:secret:with:colons")), Credential{Scheme: SchemeBasic, User: "alice"}},
		{"basic lower case, no password", "basic " + b64([]byte("alice")), Credential{Scheme: SchemeBasic, User: "alice"}},
		{"basic unpadded", "Basic " + strings.TrimRight(b64([]byte("al:x")), "="), Credential{Scheme: SchemeBasic, User: "al"}},
		{"basic not base64", "Basic !!!", Credential{Scheme: SchemeBasic}},
		{"basic no token", "Basic", Credential{Scheme: SchemeBasic}},
		{"digest", `Digest username="al\"ice", realm="corp", nonce="n", uri="/", response="r"`, Credential{Scheme: SchemeDigest, User: `al"ice`}},
		{"digest token user", `Digest realm="x", username=bob`, Credential{Scheme: SchemeDigest, User: "bob"}},
		{"ntlm type 1", "NTLM " + b64(type1), Credential{Scheme: SchemeNTLM, NTLM: 1}},
		{"ntlm type 2", "NTLM " + b64(type2), Credential{Scheme: SchemeNTLM, NTLM: 2}},
		{"ntlm type 3", "NTLM " + b64(type3), Credential{Scheme: SchemeNTLM, NTLM: 3, User: `CORP\alice`}},
		{"ntlm type 3 without domain", "NTLM " + b64(type3NoDomain), Credential{Scheme: SchemeNTLM, NTLM: 3, User: "bob"}},
		{"ntlm type 3 non-ASCII", "NTLM " + b64(type3Unicode), Credential{Scheme: SchemeNTLM, NTLM: 3, User: `ＣＯＲＰ\山田`}},
		{"ntlm type 3 OEM", "NTLM " + b64(oem), Credential{Scheme: SchemeNTLM, NTLM: 3, User: `OLD\café`}},
		{"ntlm truncated", "NTLM " + b64(type3[:40]), Credential{Scheme: SchemeNTLM, NTLM: 3}},
		{"ntlm bad type", "NTLM " + b64([]byte("NTLMSSP\x00\x07\x00\x00\x00")), Credential{Scheme: SchemeNTLM}},
		{"negotiate raw ntlm", "Negotiate " + b64(type1), Credential{Scheme: SchemeNegotiate, NTLM: 1}},
		{"negotiate raw ntlm type 3", "Negotiate " + b64(type3), Credential{Scheme: SchemeNegotiate, NTLM: 3, User: `CORP\alice`}},
		{"negotiate spnego init with ntlm", "Negotiate " + b64(initBytes), Credential{Scheme: SchemeNegotiate, NTLM: 1}},
		{"negotiate spnego resp with ntlm", "Negotiate " + b64(respBytes), Credential{Scheme: SchemeNegotiate, NTLM: 3, User: `CORP\alice`}},
		{"negotiate garbage", "Negotiate " + b64([]byte{0x60, 0x82, 0xff, 0xff, 0x06}), Credential{Scheme: SchemeNegotiate}},
		{"negotiate too long", long, Credential{Scheme: SchemeNegotiate}},
		{"other", "Bearer eyJhbGciOi", Credential{Scheme: SchemeOther}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Inspect(tt.value); got != tt.want {
				t.Errorf("Inspect = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("a", MaxFieldLen-1) + "山田"
	got := clip(long)
	if got != strings.Repeat("a", MaxFieldLen-1) {
		t.Errorf("clip split a rune: %q", got[MaxFieldLen-4:])
	}
	basic := Inspect("Basic " + b64([]byte(strings.Repeat("u", 1000)+":p")))
	if len(basic.User) != MaxFieldLen {
		t.Errorf("User is %d bytes; want %d", len(basic.User), MaxFieldLen)
	}
}

// krbClient logs alice in with gokrb5 against the test KDC.
func krbClient(t testing.TB, k *testsquid.KDC) *client.Client {
	t.Helper()
	cfg, err := krbconfig.Load(k.Conf)
	if err != nil {
		t.Fatal(err)
	}
	cl := client.NewWithPassword(krbUser, k.Realm, krbPassword, cfg, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatalf("login: %v", err)
	}
	t.Cleanup(cl.Destroy)
	return cl
}

// TestInspectKerberos reads AP-REQs for real tickets from the test KDC, in
// every framing a client uses.
func TestInspectKerberos(t *testing.T) {
	k := startKDC(t)
	cl := krbClient(t, k)
	for _, spn := range krbServices {
		t.Run(spn, func(t *testing.T) {
			ctx, err := spnego.SPNEGOClient(cl, spn).InitSecContext()
			if err != nil {
				t.Fatal(err)
			}
			tok := ctx.(*spnego.SPNEGOToken)
			full, err := tok.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			// The mechToken is the krb5 GSS token: 0x60, the krb5 OID, TOK_ID, AP-REQ.
			gss := tok.NegTokenInit.MechTokenBytes
			var krb5 spnego.KRB5Token
			if err := krb5.Unmarshal(gss); err != nil {
				t.Fatal(err)
			}
			bare, err := krb5.APReq.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			msOID, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 48018, 1, 2, 2})
			if err != nil {
				t.Fatal(err)
			}
			msGSS, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassApplication, Tag: 0, IsCompound: true,
				Bytes: append(append(msOID, 0x01, 0x00), bare...)})
			if err != nil {
				t.Fatal(err)
			}
			msInit := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{
				MechTypes:      []gofork.ObjectIdentifier{gssapi.OIDMSLegacyKRB5.OID(), gssapi.OIDKRB5.OID()},
				MechTokenBytes: msGSS}}
			msFull, err := msInit.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			want := Credential{Scheme: SchemeNegotiate, Kerberos: true, SPN: spn, Realm: k.Realm}
			for name, b := range map[string][]byte{"spnego": full, "gss krb5": gss, "bare ap-req": bare, "ms oid": msGSS, "spnego ms oid": msFull} {
				if got := Inspect("Negotiate " + b64(b)); got != want {
					t.Errorf("%s: Inspect = %+v; want %+v", name, got, want)
				}
			}
			// Cut anywhere, the token still never panics and never claims
			// a service name it did not carry in full.
			for n := range len(full) {
				got := Inspect("Negotiate " + b64(full[:n]))
				if got.SPN != "" && got.SPN != spn {
					t.Fatalf("cut at %d: SPN %q", n, got.SPN)
				}
			}
		})
	}
}

// TestInspectCurl captures what curl really sends as a proxy client: NTLM
// (checked by the test's NTLMv2 verifier, so the bytes are a working
// handshake) and Negotiate with a Kerberos ticket from the test KDC, with
// the proxy named as the parent and as an address.
func TestInspectCurl(t *testing.T) {
	curl := testsquid.Need(t, "curl", "curl")
	run := func(t *testing.T, env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "-o", "/dev/null", "--max-time", "10"}, args...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("curl %v: %v\n%s", args, err, out)
		}
	}

	t.Run("ntlm", func(t *testing.T) {
		for _, tc := range []struct {
			password string
			verified bool
		}{{"alice-Pa55", true}, {"wrong", false}} {
			c := newAuthCapture(t, "NTLM", `Basic realm="corp"`)
			run(t, os.Environ(), "--proxy-ntlm", "-U", `CORP\alice:`+tc.password, "-x", "http://"+c.addr(), "http://origin.invalid/")
			vals := c.values()
			if len(vals) < 2 {
				t.Fatalf("captured %q; want type 1 and type 3", vals)
			}
			if got := Inspect(vals[0]); got != (Credential{Scheme: SchemeNTLM, NTLM: 1}) {
				t.Errorf("first leg: %+v", got)
			}
			if got := Inspect(vals[1]); got != (Credential{Scheme: SchemeNTLM, NTLM: 3, User: `CORP\alice`}) {
				t.Errorf("second leg: %+v", got)
			}
			if got := len(c.users()) > 0; got != tc.verified {
				t.Errorf("password %q: verified = %v; want %v", tc.password, got, tc.verified)
			}
		}
	})

	t.Run("negotiate", func(t *testing.T) {
		k := startKDC(t)
		env := append(os.Environ(), k.ClientEnv(k.Kinit(krbUser, krbPassword))...)
		for _, tc := range []struct{ host, spn string }{
			{"proxy.corp.example", "HTTP/proxy.corp.example"},
			{"localhost", "HTTP/localhost"},
			{"127.0.0.1", "HTTP/127.0.0.1"},
		} {
			c := newAuthCapture(t, "Negotiate", "NTLM")
			_, port, _ := strings.Cut(c.addr(), ":")
			run(t, env, "--proxy-negotiate", "-U", ":", "--resolve", tc.host+":"+port+":127.0.0.1",
				"-x", "http://"+tc.host+":"+port, "http://origin.invalid/")
			vals := c.values()
			if len(vals) == 0 {
				t.Fatalf("%s: curl sent no Negotiate token", tc.host)
			}
			want := Credential{Scheme: SchemeNegotiate, Kerberos: true, SPN: tc.spn, Realm: k.Realm}
			if got := Inspect(vals[0]); got != want {
				t.Errorf("%s: Inspect = %+v; want %+v", tc.host, got, want)
			}
		}
	})
}

func FuzzInspect(f *testing.F) {
	type1, type3 := ntlmTokens(f, `CORP\alice`, "pw")
	for _, s := range []string{"Basic " + b64([]byte("a:b")), "NTLM " + b64(type1), "Negotiate " + b64(type3),
		"Negotiate YIIBBgYGKwYBBQUCoIH7MIH4oA0wCwYJKoZIhvcSAQICooHmBIHjYIHgBgkqhkiG9xIBAgIBAG6B0DCBzaADAgEFoQMCAQ6iBwMFAAAAAACjVGFSMFCgAwIBBaEOGwxURVNULk0zNjVUQVCiITAfoAMCAQKhGDAWGwRIVFRQGw5wcm94eS5leGFtcGxl",
		`Digest username="x"`, "Negotiate oRQwEqADCgEAoQsGCSqGSIb3EgECAg=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c := Inspect(v)
		if len(c.SPN) > MaxFieldLen || len(c.Realm) > MaxFieldLen || len(c.User) > MaxFieldLen {
			t.Fatalf("field over MaxFieldLen: %+v", c)
		}
		if c.NTLM > 3 || (c.Kerberos || c.NTLM != 0) && c.Scheme != SchemeNTLM && c.Scheme != SchemeNegotiate {
			t.Fatalf("inconsistent: %+v", c)
		}
		if c.Scheme != SchemeOf(v) {
			t.Fatalf("scheme %v; SchemeOf says %v", c.Scheme, SchemeOf(v))
		}
	})
}

// apReqToken is an SPNEGO token around an AP-REQ of the size a real one
// has (an MIT ticket with a 1 KiB encrypted part), built with gokrb5's
// types and no KDC, for the benchmark.
func apReqToken(b testing.TB) []byte {
	b.Helper()
	tkt := messages.Ticket{TktVNO: 5, Realm: "TEST.M365TAP",
		SName:   types.NewPrincipalName(2, "HTTP/proxy.corp.example"),
		EncPart: types.EncryptedData{EType: 18, KVNO: 2, Cipher: make([]byte, 1024)}}
	ap := messages.APReq{PVNO: 5, MsgType: 14, APOptions: types.NewKrbFlags(), Ticket: tkt,
		EncryptedAuthenticator: types.EncryptedData{EType: 18, Cipher: make([]byte, 200)}}
	raw, err := ap.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113554, 1, 2, 2})
	gss, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassApplication, Tag: 0, IsCompound: true, Bytes: append(append(oid, 1, 0), raw...)})
	init := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{
		MechTypes: []gofork.ObjectIdentifier{gssapi.OIDKRB5.OID()}, MechTokenBytes: gss}}
	tok, err := init.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

func TestAPReqToken(t *testing.T) {
	want := Credential{Scheme: SchemeNegotiate, Kerberos: true, SPN: "HTTP/proxy.corp.example", Realm: "TEST.M365TAP"}
	if got := Inspect("Negotiate " + b64(apReqToken(t))); got != want {
		t.Errorf("Inspect = %+v; want %+v", got, want)
	}
}

func BenchmarkInspect(b *testing.B) {
	type1, type3 := ntlmTokens(b, `CORP\alice`, "pw")
	for _, bc := range []struct{ name, value string }{
		{"basic", "Basic " + b64([]byte("alice:secret"))},
		{"ntlm-type1", "NTLM " + b64(type1)},
		{"ntlm-type3", "NTLM " + b64(type3)},
		{"negotiate-kerberos", "Negotiate " + b64(apReqToken(b))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Inspect(bc.value)
			}
		})
	}
}
