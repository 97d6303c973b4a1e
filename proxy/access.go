package proxy

import (
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/m365tap/m365tap/rules"
)

// authenticator checks Proxy-Authorization against bcrypt hashes. bcrypt
// costs tens of milliseconds by design, far too much per request, so a
// header value that verified once is remembered (bounded).
type authenticator struct {
	users map[string][]byte // name -> bcrypt hash
	mu    sync.RWMutex
	good  map[string]bool // exact header values that verified
}

const authCacheMax = 1024

func newAuthenticator(users map[string][]byte) *authenticator {
	if len(users) == 0 {
		return nil
	}
	return &authenticator{users: users, good: map[string]bool{}}
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
		hash = dummyHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil || !known {
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

// dummyHash is made on first use: bcrypt is slow on purpose, and most taps
// never authenticate anyone.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("m365tap"), bcrypt.DefaultCost)
	return h
})

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

// refuseConn answers a connection the limiter turned away and logs it.
func (s *Server) refuseConn(c net.Conn, reason string, status int) {
	s.inflight.Add(1)
	ex := &exchange{srv: s, id: s.nextID.Add(1), start: s.now(), client: c.RemoteAddr().String()}
	ex.fail(rules.Denied, errors.New(reason))
	ex.status = status
	body := "m365tap: denied\n"
	_, _ = c.Write([]byte("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nX-M365tap-Outcome: denied\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body))
	_ = c.Close()
	ex.finish()
}
