// Command ntlmhelper is a Squid NTLM authentication helper for m365tap's
// tests that really verifies NTLMv2 responses against known passwords.
//
// Usage: ntlmhelper USERS_FILE, where each line of USERS_FILE is
// "user:password". It speaks Squid's stateful NTLM helper protocol on
// stdin/stdout: "YR <NEGOTIATE>" is answered "TT <CHALLENGE>", and
// "KK <AUTHENTICATE>" is answered "AF <user>" when the response proves the
// user's password for the last challenge, "NA <reason>" otherwise. Squid
// (and negotiate_wrapper_auth, which passes NTLM tokens inside Negotiate
// to it) keeps one helper for the whole handshake, so the challenge is the
// helper's state.
package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/m365tap/m365tap/internal/testsquid/ntlm"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ntlmhelper USERS_FILE")
		os.Exit(2)
	}
	users, err := readUsers(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ntlmhelper:", err)
		os.Exit(1)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 64<<10)
	out := bufio.NewWriter(os.Stdout)
	var challenge *ntlm.Challenge
	for in.Scan() {
		reply := answer(in.Text(), users, &challenge)
		fmt.Fprintln(out, reply)
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
}

// answer handles one request line. The message type, not the YR/KK verb,
// decides what to do: Squid sends a client's NEGOTIATE as YR, but a helper
// that trusted the verb would answer a replayed AUTHENTICATE with a fresh
// challenge instead of refusing it.
func answer(line string, users map[string]user, challenge **ntlm.Challenge) string {
	verb, token, _ := strings.Cut(line, " ")
	if verb != "YR" && verb != "KK" {
		return "BH unknown request"
	}
	msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return "BH token is not base64"
	}
	switch ntlm.MessageType(msg) {
	case ntlm.TypeNegotiate:
		c, err := ntlm.NewChallenge("TESTDOM", "SQUID")
		if err != nil {
			return "BH " + err.Error()
		}
		*challenge = c
		return "TT " + base64.StdEncoding.EncodeToString(c.Marshal())
	case ntlm.TypeAuthenticate:
		c := *challenge
		*challenge = nil // one answer per challenge
		if c == nil {
			return "NA no challenge was issued"
		}
		a, err := ntlm.ParseAuthenticate(msg)
		if err != nil {
			return "NA malformed AUTHENTICATE"
		}
		u, ok := users[strings.ToLower(a.User)]
		if !ok {
			return "NA unknown user"
		}
		if err := a.Verify(c.Server, u.password); err != nil {
			return "NA wrong password"
		}
		return "AF " + u.name
	default:
		return "BH not an NTLM NEGOTIATE or AUTHENTICATE message"
	}
}

type user struct{ name, password string }

func readUsers(path string) (map[string]user, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	users := map[string]user{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		name, pw, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: line %q is not user:password", path, line)
		}
		users[strings.ToLower(name)] = user{name, pw}
	}
	return users, nil
}
