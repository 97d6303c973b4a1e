package testsquid

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Auth selects the authentication a Squid demands.
type Auth int

const (
	// AuthNone: no authentication; every loopback client is served.
	AuthNone Auth = iota
	// AuthBasic: Basic through basic_ncsa_auth and an htpasswd file.
	AuthBasic
	// AuthNTLM: NTLM through ntlmhelper, which verifies NTLMv2.
	AuthNTLM
	// AuthNegotiate: Negotiate (Kerberos only) through
	// negotiate_kerberos_auth; needs Options.KDC and Options.SPN.
	AuthNegotiate
	// AuthDigest: Digest (RFC 7616, MD5) through digest_file_auth; a
	// scheme the tap knows nothing special about.
	AuthDigest
	// AuthAll: Negotiate, NTLM and Basic offered in that order, as a
	// corporate proxy in a Windows domain does; Negotiate carries Kerberos
	// or NTLM tokens (negotiate_wrapper_auth). Needs Options.KDC and SPN.
	AuthAll
)

// String names the mode as it reads in a test name.
func (a Auth) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthBasic:
		return "basic"
	case AuthNTLM:
		return "ntlm"
	case AuthNegotiate:
		return "negotiate"
	case AuthDigest:
		return "digest"
	case AuthAll:
		return "negotiate-ntlm-basic"
	default:
		return fmt.Sprintf("Auth(%d)", int(a))
	}
}

// User is an account Squid accepts with Basic, NTLM and Digest. Kerberos users
// live in the KDC (KDC.AddUser).
type User struct{ Name, Password string }

// Options configures a Squid.
type Options struct {
	// Auth is the authentication demanded; the zero value is none.
	Auth Auth
	// Users are the Basic, NTLM and Digest accounts.
	Users []User
	// KDC and SPN (such as "HTTP/proxy.corp.test") are the realm and the
	// service Squid accepts Kerberos tickets for, with AuthNegotiate and
	// AuthAll. The service principal is added to the KDC.
	KDC *KDC
	SPN string
	// Deny are authenticated user names (as Squid logs them, e.g.
	// "mallory" or "mallory@TEST.M365TAP") that Squid answers 407 all the
	// same: an account the proxy refuses, as a disabled one is.
	Deny []string
	// Hosts are names Squid resolves without DNS (its hosts_file), so a
	// test can send a Microsoft name to a loopback origin. Squid asks no
	// DNS server but 127.0.0.1, so other names fail.
	Hosts map[string]string
}

// Squid is Debian's Squid running on loopback with a config of the test's.
type Squid struct {
	// Addr is the host:port Squid listens on.
	Addr string
	// StartupTime is how long Squid took to accept connections.
	StartupTime time.Duration

	opts Options
	dir  string
	log  string
	proc *process
}

// Start writes a config for opts into a temporary directory and starts
// Squid on a free 127.0.0.1 port; it stops at t's cleanup.
func Start(t testing.TB, opts Options) *Squid {
	t.Helper()
	bin := Need(t, "squid", "squid")
	s := &Squid{opts: opts, dir: t.TempDir()}
	s.log = filepath.Join(s.dir, "access.log")
	var env []string
	auth := s.authConfig(t, &env)
	s.writeFile(t, "hosts", hostsFile(opts.Hosts))
	if err := os.WriteFile(s.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 5 {
		s.Addr = freeAddr(t)
		s.writeFile(t, "squid.conf", s.config(auth))
		shareDir(t, s.dir)
		start := time.Now()
		cmd := exec.Command(bin, "-N", "-f", filepath.Join(s.dir, "squid.conf"))
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir}, env...)
		cmd.Dir = s.dir
		p, perr := startProcess(cmd, filepath.Join(s.dir, "squid.out"))
		if perr != nil {
			t.Fatalf("testsquid: start squid: %v", perr)
		}
		if err = p.waitListening(s.Addr, 20*time.Second); err == nil {
			s.StartupTime = time.Since(start)
			s.proc = p
			running.add(t, s)
			t.Cleanup(func() { s.stop(t) })
			t.Logf("testsquid: squid (%v) on %s started in %v", opts.Auth, s.Addr, s.StartupTime.Round(time.Millisecond))
			return s
		}
		p.stop()
		if !strings.Contains(tail(filepath.Join(s.dir, "cache.log"), 4000), "Address already in use") {
			break
		}
	}
	t.Fatalf("testsquid: squid did not start: %v\ncache.log:\n%s\noutput:\n%s", err,
		tail(filepath.Join(s.dir, "cache.log"), 4000), tail(filepath.Join(s.dir, "squid.out"), 2000))
	return nil
}

// URL is Squid's proxy URL, for http.ProxyURL and curl -x.
func (s *Squid) URL() *url.URL { return &url.URL{Scheme: "http", Host: s.Addr} }

// Port is the port Squid listens on.
func (s *Squid) Port() string {
	_, p, _ := net.SplitHostPort(s.Addr)
	return p
}

// Dir is the directory holding Squid's config and logs; a failing test
// may print cache.log from it.
func (s *Squid) Dir() string { return s.dir }

// running are the Squids each test has started. Squid takes about 1.5 s
// to stop whatever shutdown_lifetime says, so the first cleanup of a test
// asks all of its Squids to stop at once and each then waits for its own.
var running = squidsByTest{m: map[testing.TB][]*Squid{}}

type squidsByTest struct {
	mu sync.Mutex
	m  map[testing.TB][]*Squid
}

func (r *squidsByTest) add(t testing.TB, s *Squid) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[t] = append(r.m[t], s)
}

func (r *squidsByTest) signalAll(t testing.TB) {
	r.mu.Lock()
	all := r.m[t]
	delete(r.m, t)
	r.mu.Unlock()
	for _, s := range all {
		_ = s.proc.cmd.Process.Signal(syscall.SIGTERM)
	}
}

func (s *Squid) stop(t testing.TB) {
	start := time.Now()
	running.signalAll(t)
	s.proc.stop()
	t.Logf("testsquid: squid on %s stopped in %v", s.Addr, time.Since(start).Round(time.Millisecond))
}

func (s *Squid) writeFile(t testing.TB, name, text string) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostsFile(m map[string]string) string {
	var b strings.Builder
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", m[n], n)
	}
	return b.String()
}

// authConfig writes the files the auth mode needs and returns its
// auth_param lines; env receives what Squid's helpers need.
func (s *Squid) authConfig(t testing.TB, env *[]string) string {
	t.Helper()
	o := s.opts
	var lines []string
	param := func(scheme, program string, extra ...string) {
		lines = append(lines, "auth_param "+scheme+" program "+program)
		// startup=1: a helper is ready before the first request, so the
		// first handshake does not wait for a fork.
		lines = append(lines, "auth_param "+scheme+" children 10 startup=1 idle=1")
		lines = append(lines, extra...)
	}
	basic := func() {
		param("basic", squidHelper(t, "basic_ncsa_auth")+" "+s.htpasswd(t),
			`auth_param basic realm testsquid`)
	}
	ntlm := func() string {
		users := s.usersFile(t)
		return ntlmHelper(t) + " " + users
	}
	kerberos := func() string {
		if o.KDC == nil || o.SPN == "" {
			t.Fatalf("testsquid: %v needs Options.KDC and Options.SPN", o.Auth)
		}
		kt := o.KDC.AddService(o.SPN)
		// Squid's user reads the keytab; it lives in the KDC's directory.
		ktCopy := filepath.Join(s.dir, "http.keytab")
		b, err := os.ReadFile(kt)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ktCopy, b, 0o600); err != nil {
			t.Fatal(err)
		}
		confCopy := filepath.Join(s.dir, "krb5.conf")
		b, err = os.ReadFile(o.KDC.Conf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(confCopy, b, 0o644); err != nil {
			t.Fatal(err)
		}
		*env = append(*env, "KRB5_CONFIG="+confCopy, "KRB5_KTNAME=FILE:"+ktCopy, "KRB5RCACHEDIR="+s.dir)
		return squidHelper(t, "negotiate_kerberos_auth") + " -k " + ktCopy + " -s " + o.SPN + "@" + o.KDC.Realm
	}
	switch o.Auth {
	case AuthNone:
		return ""
	case AuthBasic:
		basic()
	case AuthNTLM:
		param("ntlm", ntlm(), "auth_param ntlm keep_alive on")
	case AuthNegotiate:
		param("negotiate", kerberos(), "auth_param negotiate keep_alive on")
	case AuthDigest:
		// digest_file_auth reads "user:password" lines in the clear.
		param("digest", squidHelper(t, "digest_file_auth")+" "+s.usersFile(t),
			"auth_param digest realm testsquid")
	case AuthAll:
		wrapper := squidHelper(t, "negotiate_wrapper_auth") + " --ntlm " + ntlm() + " --kerberos " + kerberos()
		param("negotiate", wrapper, "auth_param negotiate keep_alive on")
		param("ntlm", ntlm(), "auth_param ntlm keep_alive on")
		basic()
	default:
		t.Fatalf("testsquid: unknown auth mode %v", o.Auth)
	}
	return strings.Join(lines, "\n")
}

// htpasswd writes the Basic accounts with Apache's htpasswd (MD5-crypt,
// which basic_ncsa_auth verifies), the password on stdin.
func (s *Squid) htpasswd(t testing.TB) string {
	t.Helper()
	bin := Need(t, "htpasswd", "apache2-utils")
	p := filepath.Join(s.dir, "htpasswd")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range s.opts.Users {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, bin, "-i", "-m", p, u.Name)
		cmd.Stdin = strings.NewReader(u.Password)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("testsquid: htpasswd %s: %v\n%s", u.Name, err, out)
		}
	}
	return p
}

func (s *Squid) usersFile(t testing.TB) string {
	var b strings.Builder
	for _, u := range s.opts.Users {
		fmt.Fprintf(&b, "%s:%s\n", u.Name, u.Password)
	}
	return s.writeFile(t, "ntlm-users", b.String())
}

// logFormat puts the fields a test compares on one line, separated by
// single spaces: time, client address and port, status, method, URL (host:port for
// CONNECT), user ("-" for none) and Squid's result code.
const logFormat = `%ts.%03tu %>a %>p %>Hs %rm %ru %un %Ss`

func (s *Squid) config(auth string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("http_port %s", s.Addr)
	w("visible_hostname testsquid")
	w("pid_filename %s/squid.pid", s.dir)
	w("cache_log %s/cache.log", s.dir)
	w("logformat testsquid %s", logFormat)
	w("access_log stdio:%s testsquid", s.log)
	w("buffered_logs off")
	w("logfile_rotate 0")
	w("cache_store_log none")
	w("coredump_dir %s", s.dir)
	w("netdb_filename none")
	w("pinger_enable off")
	// Nothing cached: every request reaches the origin and is logged as
	// the client sent it.
	w("cache deny all")
	w("cache_mem 0 MB")
	w("hosts_file %s/hosts", s.dir)
	w("dns_nameservers 127.0.0.1")
	w("shutdown_lifetime 0 seconds")
	w("max_filedescriptors 4096")
	if auth != "" {
		w("%s", auth)
	}
	w("acl loopback_clients src 127.0.0.0/8")
	w("acl loopback_destinations dst 127.0.0.0/8")
	w("http_access deny !loopback_clients")
	// Only loopback origins, on any port, CONNECT included: tests never
	// leave the machine.
	w("http_access deny !loopback_destinations")
	if s.opts.Auth != AuthNone {
		w("acl authenticated proxy_auth REQUIRED")
		// The auth ACL last on a deny line makes Squid answer 407.
		w("http_access deny !authenticated")
		if len(s.opts.Deny) > 0 {
			w("acl refused_users proxy_auth %s", strings.Join(s.opts.Deny, " "))
			w("http_access deny refused_users")
		}
	}
	w("http_access allow all")
	return b.String()
}
