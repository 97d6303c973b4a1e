package proxy

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m365tap/m365tap/internal/passhash"
	"github.com/m365tap/m365tap/rules"
)

// authenticator checks Proxy-Authorization against bcrypt or Argon2 hashes.
// Both cost tens of milliseconds or more by design, far too much per
// request, so a header value that verified once is remembered (bounded).
type authenticator struct {
	users map[string]*passhash.Hash
	// decoy is verified for a user name that does not exist, so that the
	// answer takes as long as for one that does (see newAuthenticator).
	decoy func() *passhash.Hash
	// slots bounds the verifications running at once: a flood of wrong
	// passwords must not take every CPU, nor hold an Argon2 memory block
	// per attempt (64 MiB each with the usual m=65536).
	slots chan struct{}
	mu    sync.RWMutex
	good  map[string]bool // exact header values that verified
}

const authCacheMax = 1024

// authMemoryBudget bounds the memory of the verifications running at once.
const authMemoryBudget = 1 << 30

// newAuthenticator parses the hashes; an entry that does not parse (config
// validation refuses it first) lets nobody in under that name. Unknown
// names are checked against a decoy with the kind and parameters most of
// the users' hashes have (ties: the first such user by name), so with one
// kind and cost for every user, as htpasswd or argon2 with fixed options
// produce, timing does not tell which names exist.
func newAuthenticator(users map[string][]byte) *authenticator {
	if len(users) == 0 {
		return nil
	}
	a := &authenticator{users: make(map[string]*passhash.Hash, len(users)), good: map[string]bool{}}
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	sort.Strings(names)
	var (
		ref    *passhash.Hash
		count        = map[string]int{}
		maxMem int64 = 1
	)
	for _, name := range names {
		h, err := passhash.Parse(string(users[name]))
		if err != nil {
			continue
		}
		a.users[name] = h
		p := h.Params()
		count[p]++
		if ref == nil || count[p] > count[ref.Params()] {
			ref = h
		}
		maxMem = max(maxMem, h.Memory())
	}
	a.decoy = sync.OnceValue(func() *passhash.Hash {
		if ref == nil {
			return nil
		}
		// Made on first use: a bcrypt decoy costs one login to make, and
		// most taps never see an unknown name.
		return ref.Decoy()
	})
	a.slots = make(chan struct{}, max(1, min(int64(runtime.GOMAXPROCS(0)), authMemoryBudget/maxMem)))
	return a
}

// check returns "" when the request may pass, else the reason for the log.
func (a *authenticator) check(r *http.Request) string {
	h := r.Header.Get("Proxy-Authorization")
	if h == "" {
		return "proxy authentication required"
	}
	a.mu.RLock()
	ok := a.good[h]
	a.mu.RUnlock()
	if ok {
		return ""
	}
	scheme, cred, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "unsupported proxy authentication scheme"
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "malformed proxy credentials"
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	hash, known := a.users[user]
	if !known {
		// Spend the same time as for a known user, so response timing does
		// not tell which user names exist.
		hash = a.decoy()
	}
	if hash == nil || !a.verify(r.Context(), hash, []byte(pass)) || !known {
		return "wrong proxy credentials"
	}
	a.mu.Lock()
	if len(a.good) >= authCacheMax {
		clear(a.good)
	}
	a.good[h] = true
	a.mu.Unlock()
	return ""
}

// verify runs one verification in a slot; a client that leaves while it
// waits for one gives up its turn.
func (a *authenticator) verify(ctx context.Context, h *passhash.Hash, pass []byte) bool {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-a.slots }()
	return h.Verify(pass)
}

// connLimiter bounds concurrent client connections, globally and per
// client address, so one misbehaving client cannot take every socket.
type connLimiter struct {
	max, perClient int
	total          atomic.Int64
	mu             sync.Mutex
	byClient       map[netip.Addr]int
}

// acquire returns "" and counts the connection, or the reason to refuse it.
func (l *connLimiter) acquire(ip netip.Addr) (reason string, status int) {
	if l.max > 0 && l.total.Add(1) > int64(l.max) {
		l.total.Add(-1)
		return "too many client connections (access.max_conns " + strconv.Itoa(l.max) + ")", http.StatusServiceUnavailable
	} else if l.max <= 0 {
		l.total.Add(1)
	}
	if l.perClient > 0 {
		l.mu.Lock()
		n := l.byClient[ip]
		if n >= l.perClient {
			l.mu.Unlock()
			l.total.Add(-1)
			return "too many connections from this client (access.max_conns_per_client " + strconv.Itoa(l.perClient) + ")", http.StatusTooManyRequests
		}
		l.byClient[ip] = n + 1
		l.mu.Unlock()
	}
	return "", 0
}

func (l *connLimiter) release(ip netip.Addr) {
	l.total.Add(-1)
	if l.perClient > 0 {
		l.mu.Lock()
		if n := l.byClient[ip]; n <= 1 {
			delete(l.byClient, ip)
		} else {
			l.byClient[ip] = n - 1
		}
		l.mu.Unlock()
	}
}

// refuseWriteTimeout bounds writing a refusal.
const refuseWriteTimeout = 2 * time.Second

// refuseConn answers a connection the limiter turned away and logs it. The
// accept loop counted it in inflight already; finish releases that.
func (s *Server) refuseConn(c net.Conn, reason string, status int) {
	ex := &exchange{srv: s, id: s.nextID.Add(1), start: s.now(), client: c.RemoteAddr().String()}
	ex.fail(rules.Denied, errors.New(reason))
	ex.status = status
	body := "m365tap: denied\n"
	// A client that reads nothing cannot hold the refusal, nor Shutdown.
	_ = c.SetWriteDeadline(s.now().Add(refuseWriteTimeout))
	_, _ = c.Write([]byte("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nX-M365tap-Outcome: denied\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body))
	_ = c.Close()
	ex.finish()
}
