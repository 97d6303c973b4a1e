package rules_test

import (
	"fmt"

	"github.com/m365tap/m365tap/rules"
)

func ExampleSet_Match() {
	cat, err := rules.EmbeddedCatalogue()
	if err != nil {
		panic(err)
	}
	set, err := rules.Compile(cat, nil)
	if err != nil {
		panic(err)
	}
	m := set.Match("LOGIN.microsoftonline.com.", 443)
	fmt.Printf("winner %s by %s, all %s\n", m.Rule.ID, m.Pattern, m.IDs(nil))

	cause, by := m.Cause(rules.ConnectTimeout, false)
	fmt.Printf("connect_timeout: %s (section %s, from rule %s)\n", cause.ID, cause.Section, by.ID)
	// Output:
	// winner 56 by login.microsoftonline.com, all 56,59
	// connect_timeout: required-endpoint-unreachable (section 1, from rule 56)
}
