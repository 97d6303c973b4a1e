package testsquid

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/internal/testsquid/ntlm"
)

// TestNTLMHelperProtocol drives the built helper as Squid does, one line
// in and one out, and checks that it proves the password: the right one is
// accepted under the account's name, a wrong one, an unknown user, an
// answer without a challenge and a replayed answer are refused.
func TestNTLMHelperProtocol(t *testing.T) {
	bin := ntlmHelper(t)
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("alice:Alice-pw-1\nBob:Bob-pw-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, users)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	out := bufio.NewScanner(outPipe)
	ask := func(verb string, msg []byte) string {
		t.Helper()
		fmt.Fprintf(in, "%s %s\n", verb, base64.StdEncoding.EncodeToString(msg))
		if !out.Scan() {
			t.Fatalf("helper closed: %v", out.Err())
		}
		return out.Text()
	}
	challenge := func() *ntlm.Challenge {
		t.Helper()
		reply := ask("YR", ntlm.Negotiate())
		tok, ok := strings.CutPrefix(reply, "TT ")
		if !ok {
			t.Fatalf("YR answered %q, want TT <challenge>", reply)
		}
		b, err := base64.StdEncoding.DecodeString(tok)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ntlm.ParseChallenge(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	answer := func(c *ntlm.Challenge, user, pw string) []byte {
		t.Helper()
		m, err := ntlm.Respond(c, user, "TESTDOM", pw)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	c := challenge()
	right := answer(c, "ALICE", "Alice-pw-1")
	if got := ask("KK", right); got != "AF alice" {
		t.Errorf("right password: %q, want AF alice", got)
	}
	if got := ask("KK", right); !strings.HasPrefix(got, "NA ") {
		t.Errorf("the same answer replayed: %q, want NA", got)
	}
	c = challenge()
	if got := ask("KK", answer(c, "alice", "Alice-pw-2")); !strings.HasPrefix(got, "NA ") {
		t.Errorf("wrong password: %q, want NA", got)
	}
	c = challenge()
	if got := ask("KK", answer(c, "eve", "Alice-pw-1")); !strings.HasPrefix(got, "NA ") {
		t.Errorf("unknown user: %q, want NA", got)
	}
	old := challenge()
	challenge()
	if got := ask("KK", answer(old, "bob", "Bob-pw-2")); !strings.HasPrefix(got, "NA ") {
		t.Errorf("answer to an earlier challenge: %q, want NA", got)
	}
	c = challenge()
	if got := ask("KK", answer(c, "bob", "Bob-pw-2")); got != "AF Bob" {
		t.Errorf("bob: %q, want AF Bob (the account's own spelling)", got)
	}
	if got := ask("KK", []byte("not ntlm")); !strings.HasPrefix(got, "BH ") {
		t.Errorf("garbage: %q, want BH", got)
	}
}
