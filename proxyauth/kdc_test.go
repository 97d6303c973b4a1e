package proxyauth

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// needTool returns the path of an installed program. Missing, it skips the
// test on a developer's machine and fails it in CI, where .ci/run installs it.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: .ci/run installs %s", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s); with CI set this fails instead", name, pkg)
	}
	return p
}

// testKDC is a real MIT KDC on loopback in a realm of its own, with a user
// alice and the service principals a proxy would have.
type testKDC struct {
	dir      string
	realm    string
	conf     string // krb5.conf for clients
	user     string
	password string
	keytab   string // alice's keys, for clients that log in with a keytab
	services string // keytab holding every HTTP/ service principal
	cmd      *exec.Cmd
}

// The service names a test may ask tickets for: the parent's name, and the
// names a client uses when it is pointed at the tap by address or as localhost.
var kdcServices = []string{"HTTP/proxy.corp.example", "HTTP/localhost", "HTTP/127.0.0.1"}

var (
	kdcOnce sync.Once
	kdcInst *testKDC
	kdcErr  error
)

// sharedKDC starts the KDC once for the package's tests; TestMain stops it.
func sharedKDC(t testing.TB) *testKDC {
	t.Helper()
	for _, tool := range []string{"kdb5_util", "kadmin.local", "krb5kdc"} {
		needTool(t, tool, "krb5-kdc")
	}
	kdcOnce.Do(func() { kdcInst, kdcErr = startKDC() })
	if kdcErr != nil {
		t.Fatalf("KDC: %v", kdcErr)
	}
	return kdcInst
}

func TestMain(m *testing.M) {
	code := m.Run()
	if kdcInst != nil {
		kdcInst.stop()
	}
	os.Exit(code)
}

func (k *testKDC) env() []string {
	return append(os.Environ(), "KRB5_CONFIG="+k.conf, "KRB5_KDC_PROFILE="+filepath.Join(k.dir, "kdc.conf"))
}

func (k *testKDC) stop() {
	if k.cmd != nil && k.cmd.Process != nil {
		_ = k.cmd.Process.Kill()
		_ = k.cmd.Wait()
	}
	_ = os.RemoveAll(k.dir)
}

func startKDC() (*testKDC, error) {
	dir, err := os.MkdirTemp("", "m365tap-kdc-")
	if err != nil {
		return nil, err
	}
	k := &testKDC{
		dir: dir, realm: "TEST.M365TAP", user: "alice", password: "alice-Pa55",
		conf: filepath.Join(dir, "krb5.conf"), keytab: filepath.Join(dir, "alice.keytab"),
		services: filepath.Join(dir, "http.keytab"),
	}
	ok := false
	defer func() {
		if !ok {
			k.stop()
		}
	}()
	port, err := freeTCPUDPPort()
	if err != nil {
		return nil, err
	}
	krb5conf := fmt.Sprintf(`[libdefaults]
  default_realm = %[1]s
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
  default_ccache_name = FILE:%[2]s/ccache
[realms]
  %[1]s = {
    kdc = 127.0.0.1:%[3]d
  }
`, k.realm, dir, port)
	kdcconf := fmt.Sprintf(`[kdcdefaults]
  kdc_ports = %[3]d
  kdc_tcp_ports = %[3]d
[realms]
  %[1]s = {
    database_name = %[2]s/principal
    key_stash_file = %[2]s/stash
    acl_file = %[2]s/kadm5.acl
  }
[logging]
  kdc = FILE:%[2]s/kdc.log
`, k.realm, dir, port)
	if err := os.WriteFile(k.conf, []byte(krb5conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "kdc.conf"), []byte(kdcconf), 0o644); err != nil {
		return nil, err
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Env = k.env()
		cmd.Stdin = bytes.NewReader(nil)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
		return nil
	}
	if err := run("kdb5_util", "create", "-s", "-r", k.realm, "-P", "master-Pa55"); err != nil {
		return nil, err
	}
	queries := []string{
		"addprinc -pw " + k.password + " " + k.user,
		"ktadd -k " + k.keytab + " -norandkey " + k.user,
	}
	for _, s := range kdcServices {
		queries = append(queries, "addprinc -randkey "+s, "ktadd -k "+k.services+" "+s)
	}
	for _, q := range queries {
		if err := run("kadmin.local", "-r", k.realm, "-q", q); err != nil {
			return nil, err
		}
	}
	k.cmd = exec.Command("krb5kdc", "-n", "-r", k.realm, "-P", filepath.Join(dir, "kdc.pid"))
	k.cmd.Env = k.env()
	var out bytes.Buffer
	k.cmd.Stdout, k.cmd.Stderr = &out, &out
	if err := k.cmd.Start(); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("krb5kdc did not listen on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok = true
	return k, nil
}

// kinit gets alice a ticket-granting ticket into a credential cache of its own.
func (k *testKDC) kinit(t testing.TB) string {
	t.Helper()
	needTool(t, "kinit", "krb5-user")
	ccache := filepath.Join(t.TempDir(), "ccache")
	cmd := exec.Command("kinit", "-c", "FILE:"+ccache, k.user+"@"+k.realm)
	cmd.Env = k.env()
	cmd.Stdin = bytes.NewBufferString(k.password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	return ccache
}

// freeTCPUDPPort finds a port free for both TCP and UDP on 127.0.0.1: the
// KDC listens on both.
func freeTCPUDPPort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP")
}
