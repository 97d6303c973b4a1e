package rules

import (
	_ "embed"
	"strings"
)

// signInHosts is data, with its source in its header: the concrete hosts
// Office contacts to sign in and to activate. The endpoint list names most
// of them only by wildcard, and a probe cannot connect to a wildcard.
//
//go:embed data/signin-hosts.txt
var signInHosts string

// SignInHosts returns the well-known sign-in and activation hosts
// (data/signin-hosts.txt, which names its Microsoft source), in file
// order, lower-cased. Each matches a required set of the embedded
// endpoint list; a test keeps it so.
func SignInHosts() []string {
	var out []string
	for line := range strings.SplitSeq(signInHosts, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if h := strings.ToLower(strings.TrimSpace(line)); h != "" {
			out = append(out, h)
		}
	}
	return out
}
