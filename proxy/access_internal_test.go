package proxy

import (
	"maps"
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestAuthenticatorHashes: whatever mix of hash kinds and costs
// access.users holds, a check verifies the same kinds and costs, in the
// same order, for every name (known, unknown, or with a hash that does not
// parse), so a refusal takes as long whichever name was sent; and the
// verifications running at once fit the memory budget.
// BenchmarkAuthRejection measures the times themselves.
func TestAuthenticatorHashes(t *testing.T) {
	const (
		id64a = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs"
		id64b = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHR2YWx1ZTE2Yg$Ra0OxmQCixn1BsycMG3Y3wAf6++nOlu0x/0aBggo2j4"
		id1g  = "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs"
		i4k   = "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$GecB3KA8ZRkD2R2h7RTA14GU64u7NVAVQn4aIk8Guwc"
		bc4   = "$2y$04$ZZOjejqtaRTwZUQ45eMO.uQwsjqKFUmfB7.1/5U11QaaPbmv8h14q"
	)
	bc5, err := bcrypt.GenerateFromPassword([]byte("pw"), 5)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		users       map[string]string
		classes     []string // Params verified by every check, in order
		slotsAtMost int
	}{
		{"bcrypt only", map[string]string{"a": bc4}, []string{"bcrypt cost=4"}, 1 << 30},
		{"one argon2id cost", map[string]string{"b": id64a, "c": id64b}, []string{"argon2id m=65536,t=3,p=4,len=32"}, 16},
		{"argon2id and bcrypt", map[string]string{"a": bc4, "b": id64a, "c": id64b},
			[]string{"bcrypt cost=4", "argon2id m=65536,t=3,p=4,len=32"}, 16},
		{"two bcrypt costs", map[string]string{"a": bc4, "b": string(bc5)}, []string{"bcrypt cost=4", "bcrypt cost=5"}, 1 << 30},
		{"three kinds", map[string]string{"a": i4k, "b": id64a, "c": bc4},
			[]string{"argon2i m=4096,t=3,p=1,len=32", "argon2id m=65536,t=3,p=4,len=32", "bcrypt cost=4"}, 16},
		{"1 GiB: one at a time", map[string]string{"a": id1g}, []string{"argon2id m=1048576,t=1,p=1,len=32"}, 1},
		{"nothing parses", map[string]string{"a": "plain"}, nil, 1 << 30},
	}
	for _, tc := range cases {
		users := map[string][]byte{"broken": []byte("$2y$04$short")}
		for k, v := range tc.users {
			users[k] = []byte(v)
		}
		a := newAuthenticator(users)
		for _, name := range append(slices.Sorted(maps.Keys(users)), "nobody") {
			hashes, own := a.hashesFor(name)
			var got []string
			for _, h := range hashes {
				got = append(got, h.Params())
			}
			if !slices.Equal(got, tc.classes) {
				t.Errorf("%s: %q verifies %q, want %q", tc.name, name, got, tc.classes)
			}
			_, known := tc.users[name]
			if known && tc.classes != nil {
				if own < 0 || hashes[own] != a.users[name].hash {
					t.Errorf("%s: %q: its own hash is not among those verified (own %d)", tc.name, name, own)
				}
				for i, h := range hashes {
					if i != own && h != a.decoys()[i] {
						t.Errorf("%s: %q: hash %d is neither its own nor the decoy", tc.name, name, i)
					}
				}
			} else if own != -1 {
				t.Errorf("%s: %q has own %d, want -1", tc.name, name, own)
			}
		}
		if n := cap(a.slots); n < 1 || n > tc.slotsAtMost {
			t.Errorf("%s: %d verification slots, want 1..%d", tc.name, n, tc.slotsAtMost)
		}
	}
}
