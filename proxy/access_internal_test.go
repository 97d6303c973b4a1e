package proxy

import "testing"

// TestAuthenticatorDecoy: an unknown name is verified against a decoy of
// the kind and cost most users have, so it costs what a known name costs;
// and the verifications running at once fit the memory budget.
func TestAuthenticatorDecoy(t *testing.T) {
	const (
		id64a = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs"
		id64b = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHR2YWx1ZTE2Yg$Ra0OxmQCixn1BsycMG3Y3wAf6++nOlu0x/0aBggo2j4"
		id1g  = "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs"
		bc4   = "$2y$04$ZZOjejqtaRTwZUQ45eMO.uQwsjqKFUmfB7.1/5U11QaaPbmv8h14q"
	)
	cases := []struct {
		name        string
		users       map[string]string
		decoy       string // Params of the decoy; "": none
		slotsAtMost int
	}{
		{"bcrypt only", map[string]string{"a": bc4}, "bcrypt cost=4", 1 << 30},
		{"argon2id majority", map[string]string{"a": bc4, "b": id64a, "c": id64b}, "argon2id m=65536,t=3,p=4,len=32", 16},
		{"tie: first name", map[string]string{"b": id64a, "a": bc4}, "bcrypt cost=4", 16},
		{"1 GiB: one at a time", map[string]string{"a": id1g}, "argon2id m=1048576,t=1,p=1,len=32", 1},
		{"nothing parses", map[string]string{"a": "plain"}, "", 1 << 30},
	}
	for _, tc := range cases {
		users := map[string][]byte{}
		for k, v := range tc.users {
			users[k] = []byte(v)
		}
		a := newAuthenticator(users)
		got := ""
		if d := a.decoy(); d != nil {
			got = d.Params()
		}
		if got != tc.decoy {
			t.Errorf("%s: decoy %q, want %q", tc.name, got, tc.decoy)
		}
		if n := cap(a.slots); n < 1 || n > tc.slotsAtMost {
			t.Errorf("%s: %d verification slots, want 1..%d", tc.name, n, tc.slotsAtMost)
		}
	}
}
