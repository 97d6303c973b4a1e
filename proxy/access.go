package proxy

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
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
	users map[string]account
	// classes are the distinct kinds and costs (passhash.Hash.Params) of
	// the users' hashes, in a fixed order. Every check verifies one hash of
	// each class: the user's own in its class, a decoy in the others, and
	// decoys only for a name that does not exist. So a refusal costs the
	// same whichever name was sent, whatever mix of Argon2 and bcrypt
	// hashes and costs access.users holds; with one kind and cost, as
	// htpasswd or m365tap hash with fixed options produce, that is one
	// verification, as before.
	classes []string
	// decoys holds one hash per class that no password matches, made on
	// the first check (a bcrypt decoy costs one login to make), all at
	// once, so that the first check costs the same for any name too.
	decoys func() []*passhash.Hash
	// slots bounds the checks running at once: a flood of wrong passwords
	// must not take every CPU, nor hold an Argon2 memory block per attempt
	// (64 MiB each with the usual m=65536).
	slots chan struct{}
	mu    sync.RWMutex
	good  map[string]bool // exact header values that verified
}

// account is one user of access.users: the parsed hash and its class.
type account struct {
	hash  *passhash.Hash
	class int
}

const authCacheMax = 1024

// authMemoryBudget bounds the memory of the verifications running at once.
const authMemoryBudget = 1 << 30

// newAuthenticator parses the hashes; an entry that does not parse (config
// validation refuses it first) lets nobody in under that name, and costs
// what an unknown name costs.
func newAuthenticator(users map[string][]byte) *authenticator {
	if len(users) == 0 {
		return nil
	}
	a := &authenticator{users: make(map[string]account, len(users)), good: map[string]bool{}}
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	sort.Strings(names)
	var (
		refs   []*passhash.Hash // one per class
		maxMem int64            = 1
	)
	for _, name := range names {
		h, err := passhash.Parse(string(users[name]))
		if err != nil {
			continue
		}
		class := slices.Index(a.classes, h.Params())
		if class < 0 {
			class = len(a.classes)
			a.classes = append(a.classes, h.Params())
			refs = append(refs, h)
		}
		a.users[name] = account{hash: h, class: class}
		maxMem = max(maxMem, h.Memory())
	}
	a.decoys = sync.OnceValue(func() []*passhash.Hash {
		d := make([]*passhash.Hash, len(refs))
		for i, h := range refs {
			d[i] = h.Decoy()
		}
		return d
	})
	// A check verifies its hashes one after another, so it holds the
	// memory of the largest at most.
	a.slots = make(chan struct{}, max(1, min(int64(runtime.GOMAXPROCS(0)), authMemoryBudget/maxMem)))
	return a
}

// hashesFor returns what a check of user verifies, one hash per class in
// the classes' order, and the index of the user's own hash (-1 for a name
// that does not exist or whose hash did not parse).
func (a *authenticator) hashesFor(user string) (hashes []*passhash.Hash, own int) {
	hashes = slices.Clone(a.decoys())
	own = -1
	if acct, ok := a.users[user]; ok {
		hashes[acct.class], own = acct.hash, acct.class
	}
	return hashes, own
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
	if !a.verify(r.Context(), user, []byte(pass)) {
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

// verify runs the hashes of hashesFor in one slot, every one of them
// whatever the earlier ones answered; a client that leaves while it waits
// for a slot gives up its turn.
func (a *authenticator) verify(ctx context.Context, user string, pass []byte) bool {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-a.slots }()
	hashes, own := a.hashesFor(user)
	match := false
	for i, h := range hashes {
		if h.Verify(pass) && i == own {
			match = true
		}
	}
	return match
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
