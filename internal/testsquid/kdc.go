package testsquid

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Realm is the Kerberos realm StartKDC creates.
const Realm = "TEST.M365TAP"

// KDC is a real MIT Kerberos KDC on loopback, serving a realm created for
// the test under a temporary directory; no system file is read or written.
type KDC struct {
	// Realm is the realm's name.
	Realm string
	// Addr is the KDC's host:port (TCP and UDP).
	Addr string
	// Conf is the krb5.conf clients and Squid use (KRB5_CONFIG).
	Conf string

	dir      string
	kdcConf  string
	t        testing.TB
	mu       sync.Mutex
	services map[string]bool
}

// StartKDC creates the realm and starts krb5kdc; it stops at t's cleanup.
func StartKDC(t testing.TB) *KDC {
	t.Helper()
	kdb5 := Need(t, "kdb5_util", "krb5-kdc")
	krb5kdc := Need(t, "krb5kdc", "krb5-kdc")
	Need(t, "kadmin.local", "krb5-kdc")
	Need(t, "kinit", "krb5-user")
	start := time.Now()
	k := &KDC{Realm: Realm, dir: t.TempDir(), t: t}
	k.Conf = filepath.Join(k.dir, "krb5.conf")
	k.kdcConf = filepath.Join(k.dir, "kdc.conf")
	var err error
	for range 5 {
		k.Addr = freeAddr(t)
		k.writeConf()
		if err = k.run(kdb5, "create", "-s", "-r", k.Realm, "-P", "master-key-of-the-test-realm"); err != nil {
			t.Fatalf("testsquid: KDC: %v", err)
		}
		cmd := exec.Command(krb5kdc, "-n", "-P", filepath.Join(k.dir, "kdc.pid"))
		cmd.Env = k.env()
		p, perr := startProcess(cmd, filepath.Join(k.dir, "krb5kdc.out"))
		if perr != nil {
			t.Fatalf("testsquid: start krb5kdc: %v", perr)
		}
		if err = p.waitListening(k.Addr, 10*time.Second); err == nil {
			t.Cleanup(p.stop)
			t.Logf("testsquid: KDC for %s on %s started in %v", k.Realm, k.Addr, time.Since(start).Round(time.Millisecond))
			return k
		}
		p.stop()
		// Another process may have taken the port; a fresh database and
		// port are cheap.
		os.RemoveAll(filepath.Join(k.dir, "principal"))
		matches, _ := filepath.Glob(filepath.Join(k.dir, "principal*"))
		for _, m := range matches {
			os.Remove(m)
		}
		os.Remove(filepath.Join(k.dir, "stash"))
	}
	t.Fatalf("testsquid: krb5kdc did not start: %v\n%s\n%s", err, tail(filepath.Join(k.dir, "krb5kdc.out"), 2000), tail(filepath.Join(k.dir, "kdc.log"), 2000))
	return nil
}

func (k *KDC) writeConf() {
	// rdns and dns_canonicalize_hostname off: a client names the service
	// exactly after the proxy name it was given, as the tests need to show
	// (HTTP/127.0.0.1 is not HTTP/proxy.corp.test). udp_preference_limit 1
	// keeps every exchange on TCP, where the port was checked free.
	krb5 := fmt.Sprintf(`[libdefaults]
  default_realm = %[1]s
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
  default_ccache_name = FILE:%[2]s/ccache
  default_keytab_name = FILE:%[2]s/default.keytab
[realms]
  %[1]s = {
    kdc = %[3]s
  }
`, k.Realm, k.dir, k.Addr)
	kdc := fmt.Sprintf(`[kdcdefaults]
  kdc_listen = %[3]s
  kdc_tcp_listen = %[3]s
[realms]
  %[1]s = {
    database_name = %[2]s/principal
    key_stash_file = %[2]s/stash
    acl_file = %[2]s/kadm5.acl
  }
[logging]
  kdc = FILE:%[2]s/kdc.log
`, k.Realm, k.dir, k.Addr)
	for name, text := range map[string]string{k.Conf: krb5, k.kdcConf: kdc, filepath.Join(k.dir, "kadm5.acl"): ""} {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			k.t.Fatal(err)
		}
	}
}

func (k *KDC) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"KRB5_CONFIG=" + k.Conf,
		"KRB5_KDC_PROFILE=" + k.kdcConf,
	}, extra...)
}

func (k *KDC) run(bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = k.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return nil
}

func (k *KDC) kadmin(query string) {
	k.t.Helper()
	if err := k.run(Need(k.t, "kadmin.local", "krb5-kdc"), "-q", query); err != nil {
		k.t.Fatalf("testsquid: KDC: %v", err)
	}
}

// AddUser adds a user principal (name@Realm) with a password.
func (k *KDC) AddUser(name, password string) {
	k.t.Helper()
	k.kadmin(fmt.Sprintf("addprinc -pw %s %s", password, name))
}

// AddService adds a service principal with a random key, such as
// "HTTP/proxy.corp.test", and writes its key to a new keytab, whose path
// it returns.
func (k *KDC) AddService(spn string) string {
	k.t.Helper()
	kt := filepath.Join(k.dir, strings.NewReplacer("/", "_", "@", "_").Replace(spn)+".keytab")
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.services == nil {
		k.services = map[string]bool{}
	}
	if !k.services[spn] {
		k.kadmin("addprinc -randkey " + spn)
		k.services[spn] = true
	}
	// -norandkey: a second keytab for the same service (a second Squid)
	// must not change the key the first one holds.
	k.kadmin(fmt.Sprintf("ktadd -norandkey -k %s %s", kt, spn))
	return kt
}

// Kinit gets a ticket-granting ticket for user into a new credential
// cache and returns the cache's path. A wrong password fails the test.
func (k *KDC) Kinit(user, password string) string {
	k.t.Helper()
	cc := filepath.Join(k.t.TempDir(), "ccache")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Need(k.t, "kinit", "krb5-user"), "-c", "FILE:"+cc, user)
	cmd.Env = k.env()
	// kinit reads the password from stdin when it is not a terminal, which
	// keeps it off the command line.
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		k.t.Fatalf("testsquid: kinit %s: %v\n%s", user, err, out)
	}
	return cc
}

// ClientEnv is the environment a Kerberos client (curl --proxy-negotiate)
// needs to use the realm and the credential cache ccache; an empty ccache
// names one that holds no ticket.
func (k *KDC) ClientEnv(ccache string) []string {
	if ccache == "" {
		ccache = filepath.Join(k.dir, "empty-ccache")
	}
	return []string{"KRB5_CONFIG=" + k.Conf, "KRB5CCNAME=FILE:" + ccache}
}

// SquidEnv is the environment Squid's Kerberos helper needs to accept
// tickets for the keytab's service. The replay cache goes to dir, which
// Squid's user can write.
func (k *KDC) squidEnv(keytab, dir string) []string {
	return []string{"KRB5_CONFIG=" + k.Conf, "KRB5_KTNAME=FILE:" + keytab, "KRB5RCACHEDIR=" + dir}
}
