package rules

import (
	"slices"
	"strings"
	"testing"
)

// TestSignInHosts: every well-known sign-in host is a plain host name,
// listed once, and matches a required set of the Common service area in
// the embedded endpoint list on port 443, so the data cannot drift from
// the list unnoticed. Most match through a wildcard only, which is why
// they are listed at all.
func TestSignInHosts(t *testing.T) {
	cat, err := EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	hosts := SignInHosts()
	if len(hosts) < 5 {
		t.Fatalf("only %d hosts: %q", len(hosts), hosts)
	}
	wildcardOnly := 0
	for i, h := range hosts {
		if strings.ContainsAny(h, "* \t/:") || !strings.Contains(h, ".") {
			t.Errorf("%q is not a host name", h)
		}
		if slices.Contains(hosts[:i], h) {
			t.Errorf("%s is listed twice", h)
		}
		m := set.Match(h, 443)
		required, exact := false, false
		for i, r := range m.All() {
			if KindOf(r) == KindCommonRequired {
				required = true
				exact = exact || !strings.Contains(m.Patterns()[i], "*")
			}
		}
		if !required {
			t.Errorf("%s matches no required Common set of the endpoint list (matches %v)", h, m.Patterns())
		}
		if required && !exact {
			wildcardOnly++
		}
	}
	if wildcardOnly == 0 {
		t.Error("every host is named exactly by the list: the data adds nothing to the probe")
	}
}
