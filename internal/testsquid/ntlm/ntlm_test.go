package ntlm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// The NTLMv2 example of MS-NLMP section 4.2.4: user "User", domain
// "Domain", password "Password", server challenge 0123456789abcdef,
// client challenge aa..aa, time 0, AV pairs NbDomainName "Domain" and
// NbComputerName "Server".
func TestNTLMv2SpecVector(t *testing.T) {
	key := NTOWFv2("Password", "User", "Domain")
	if got, want := hex.EncodeToString(key), "0c868a403bfd7a93a3001ef22ef02e3f"; got != want {
		t.Fatalf("NTOWFv2 = %s, want %s", got, want)
	}
	info, _ := hex.DecodeString("02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000")
	server := [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	client := [8]byte{0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa}
	nt := NTv2Response(key, server, client, 0, info)
	if got, want := hex.EncodeToString(nt[:16]), "68cd0ab851e51c96aabc927bebef6a1c"; got != want {
		t.Fatalf("NTProofStr = %s, want %s", got, want)
	}
}

func TestRespondVerify(t *testing.T) {
	ch, err := NewChallenge("TESTDOM", "SQUID")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseChallenge(ch.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Server != ch.Server || parsed.TargetName != "TESTDOM" || !bytes.Equal(parsed.TargetInfo, ch.TargetInfo) {
		t.Fatalf("challenge round trip: %+v, want %+v", parsed, ch)
	}
	msg, err := Respond(parsed, "alice", "TESTDOM", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAuthenticate(msg)
	if err != nil {
		t.Fatal(err)
	}
	if a.User != "alice" || a.Domain != "TESTDOM" {
		t.Fatalf("user %q domain %q", a.User, a.Domain)
	}
	tests := []struct {
		name     string
		server   [8]byte
		password string
		nt       []byte
		ok       bool
	}{
		{"right password", ch.Server, "s3cret", a.NT, true},
		{"wrong password", ch.Server, "s3cret!", a.NT, false},
		{"answer to another challenge", [8]byte{1}, "s3cret", a.NT, false},
		{"NTLMv1 length", ch.Server, "s3cret", a.NT[:24], false},
		{"anonymous", ch.Server, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := *a
			b.NT = tt.nt
			err := b.Verify(tt.server, tt.password)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if err := (&Authenticate{NT: a.NT, User: "ALICE", Domain: "TESTDOM"}).Verify(ch.Server, "s3cret"); err != nil {
		t.Errorf("user names are compared case-insensitively by NTOWFv2: %v", err)
	}
	b := *a
	if err := b.Verify(ch.Server, "wrong"); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v, want ErrWrongPassword", err)
	}
}

func TestParseRejectsTruncated(t *testing.T) {
	ch, _ := NewChallenge("D", "C")
	full := ch.Marshal()
	for _, n := range []int{0, 8, 12, 47, len(full) - 1} {
		if _, err := ParseChallenge(full[:n]); err == nil {
			t.Errorf("ParseChallenge of %d of %d bytes: no error", n, len(full))
		}
	}
	if MessageType(Negotiate()) != TypeNegotiate {
		t.Error("Negotiate: wrong type")
	}
	if _, err := ParseAuthenticate(Negotiate()); err == nil {
		t.Error("ParseAuthenticate(NEGOTIATE): no error")
	}
}
