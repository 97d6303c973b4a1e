package proxyauth

import (
	"errors"
	"testing"
)

func TestSchemeRoundTrip(t *testing.T) {
	for s := SchemeNone; s < schemeCount; s++ {
		got, err := ParseScheme(s.String())
		if err != nil || got != s {
			t.Errorf("ParseScheme(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
	for _, bad := range []string{"Basic", "NTLM", "kerberos", " basic", "sspi"} {
		if _, err := ParseScheme(bad); !errors.Is(err, ErrUnknownScheme) {
			t.Errorf("ParseScheme(%q) err = %v; want ErrUnknownScheme", bad, err)
		}
	}
	if got := Scheme(200).String(); got != "other" {
		t.Errorf("Scheme(200) = %q; want other", got)
	}
}

func TestSchemeOf(t *testing.T) {
	tests := []struct {
		value string
		want  Scheme
	}{
		{"", SchemeNone},
		{"   ", SchemeNone},
		{"Basic YWxpY2U6c2VjcmV0", SchemeBasic},
		{"basic", SchemeBasic},
		{"BASIC realm=\"corp\"", SchemeBasic},
		{"NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==", SchemeNTLM},
		{"NTLM", SchemeNTLM},
		{"ntlm,Basic realm=x", SchemeNTLM},
		{"Negotiate YIIC", SchemeNegotiate},
		{"\tNegotiate", SchemeNegotiate},
		{"Digest username=\"alice\", realm=\"corp\"", SchemeDigest},
		{"Bearer abc", SchemeOther},
		{"Kerberos abc", SchemeOther},
		{"Basicx abc", SchemeOther},
		{"Negotiat", SchemeOther},
		{"\"Basic\"", SchemeOther},
		{",Basic", SchemeOther},
	}
	for _, tt := range tests {
		if got := SchemeOf(tt.value); got != tt.want {
			t.Errorf("SchemeOf(%q) = %v; want %v", tt.value, got, tt.want)
		}
	}
}

func TestOffered(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"none", nil, ""},
		{"empty value", []string{""}, ""},
		// Squid sends one value per configured scheme, in config order.
		{"squid order", []string{"Negotiate", "NTLM", `Basic realm="Squid proxy-caching web server"`}, "negotiate,ntlm,basic"},
		{"duplicates", []string{"NTLM", "Basic realm=a", "ntlm", `Basic realm="b"`}, "ntlm,basic"},
		{"several in one value", []string{`Basic realm="a, NTLM, Negotiate", Digest realm="x", nonce="abc", qop="auth"`}, "basic,digest"},
		{"params after comma", []string{`Digest realm="corp", qop="auth,auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`}, "digest"},
		{"NTLM challenge token", []string{"NTLM TlRMTVNTUAACAAAADAAMADgAAAAFgomiESIzRFVmd4gAAAAAAAAAAIoAigBEAAAA"}, "ntlm"},
		{"unpadded token then scheme", []string{"NTLM TlRMTVNTUAACAAAA, Basic realm=x"}, "ntlm,basic"},
		{"padded token then scheme", []string{"Negotiate oRQwEqADCgEAoQsGCSqGSIb3EgECAg==, Basic realm=x"}, "negotiate,basic"},
		{"bws around =", []string{`Basic realm = "a", charset = "UTF-8", NTLM`}, "basic,ntlm"},
		{"unknown schemes", []string{`Bearer realm="example", error="invalid_token"`, "Newauth realm=apps, type=1, title=\"Login to \\\"apps\\\"\", Basic realm=\"simple\""}, "other,basic"},
		{"garbage", []string{`"""`, "=,,=", "\x00\xff"}, ""},
		{"all five", []string{"Negotiate", "Kerberos", "NTLM", "Digest realm=x", "Basic"}, "negotiate,other,ntlm,digest,basic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Offered(tt.values); got != tt.want {
				t.Errorf("Offered(%q) = %q; want %q", tt.values, got, tt.want)
			}
		})
	}
}

// TestOfferedNoSecrets: whatever a parent sends, Offered returns only
// scheme names, never a realm, a parameter or a token.
func TestOfferedNoSecrets(t *testing.T) {
	got := Offered([]string{`Basic realm="SECRET-REALM"`, "NTLM TlRMTVNTUAACAAAAsecret", `Digest nonce="s3cr3t"`, "SecretScheme x=y"})
	if got != "basic,ntlm,digest,other" {
		t.Errorf("Offered = %q", got)
	}
}

func TestSchemeOfAllocs(t *testing.T) {
	v := "Negotiate YIIC1QYGKwYBBQUCoIICyTCCAsWgDTALBgkqhkiG9xIBAgKiggKyBIICrmCCAqoGCSqGSIb3EgECAgEAboICmTCCApWgAwIBBaEDAgEOogcDBQAgAAAAo4IBl2GCAZMwggGPoAMCAQWhDxsNVEVTVC5NMzY1VEFQ"
	if n := testing.AllocsPerRun(100, func() { _ = SchemeOf(v) }); n != 0 {
		t.Errorf("SchemeOf allocates %v times per call; want 0", n)
	}
}

func BenchmarkSchemeOf(b *testing.B) {
	values := []string{"Basic YWxpY2U6c2VjcmV0", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==", "Negotiate YIIC", "Bearer x"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = SchemeOf(values[i%len(values)])
	}
}

func BenchmarkOffered(b *testing.B) {
	values := []string{"Negotiate", "NTLM", `Basic realm="Squid proxy-caching web server"`}
	b.ReportAllocs()
	for b.Loop() {
		_ = Offered(values)
	}
}

func FuzzOffered(f *testing.F) {
	for _, s := range []string{`Basic realm="a, NTLM", Digest realm=x`, "NTLM abc==, Basic", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := Offered([]string{v})
		for _, part := range splitComma(got) {
			if _, err := ParseScheme(part); err != nil || part == "" {
				t.Fatalf("Offered(%q) = %q: %q is no scheme name", v, got, part)
			}
		}
	})
}

func splitComma(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
