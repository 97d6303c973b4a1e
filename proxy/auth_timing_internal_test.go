package proxy

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/m365tap/m365tap/internal/passhash"
)

// BenchmarkAuthRejection measures how long a refusal takes, as medians of
// 50, for an unknown user name and for each known user with a wrong
// password, under mixes of hash kinds and costs in access.users. The
// samples of the names are taken in turn, so that the load of the machine
// weighs on each alike. The figures are reported, not asserted
// (bench/HARDENING2.md):
//
//	go test -run '^$' -bench BenchmarkAuthRejection -benchtime 1x ./proxy/
func BenchmarkAuthRejection(b *testing.B) {
	for _, mix := range [][]string{
		{"bcrypt-10"},
		{"argon2id"},
		{"argon2id", "bcrypt-10"},
		{"bcrypt-8", "bcrypt-10"},
	} {
		users := map[string][]byte{}
		for _, kind := range mix {
			users[kind] = benchHash(b, kind)
		}
		names := append([]string{"nobody"}, mix...)
		b.Run(strings.Join(mix, "+"), func(b *testing.B) {
			a := newAuthenticator(users)
			refuse(a, "nobody") // the first check makes the decoys
			for range b.N {
				samples := make([][]time.Duration, len(names))
				for range 50 {
					for i, name := range names {
						samples[i] = append(samples[i], refuse(a, name))
					}
				}
				for i, name := range names {
					slices.Sort(samples[i])
					unit := "ms/wrong-password-" + name
					if name == "nobody" {
						unit = "ms/unknown-name"
					}
					b.ReportMetric(float64(samples[i][len(samples[i])/2].Microseconds())/1000, unit)
				}
			}
		})
	}
}

// benchHash hashes "right" with a kind: argon2id (m365tap hash's defaults,
// RFC 9106's second recommendation) or bcrypt-COST.
func benchHash(b *testing.B, kind string) []byte {
	if kind == "argon2id" {
		h, err := passhash.NewArgon2id([]byte("right"), 65536, 3, 4)
		if err != nil {
			b.Fatal(err)
		}
		return []byte(h)
	}
	var cost int
	if _, err := fmt.Sscanf(kind, "bcrypt-%d", &cost); err != nil {
		b.Fatal(kind, err)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("right"), cost)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// refuse times one refusal of user with a wrong password.
func refuse(a *authenticator, user string) time.Duration {
	req, _ := http.NewRequest(http.MethodGet, "http://h.test/", nil)
	req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":wrong")))
	start := time.Now()
	if a.check(req) == "" {
		panic("a wrong password passed")
	}
	return time.Since(start)
}
