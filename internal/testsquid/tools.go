package testsquid

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// Need finds an installed program by name, also in the sbin directories a
// non-login root shell may lack. Without it the test is skipped, unless CI
// is set: CI installs it, so its absence there is a failure.
func Need(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/lib/squid"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("testsquid: %s is missing; .ci/run installs the Debian package %s", name, pkg)
	}
	t.Skipf("testsquid: %s is not installed (apt-get install %s); with CI set this fails instead", name, pkg)
	return ""
}

// squidHelper is the path of one of Squid's helper programs.
func squidHelper(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("/usr/lib/squid", name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testsquid: %s is missing; .ci/run installs the Debian package squid", p)
		}
		t.Skipf("testsquid: Squid's helper %s is not installed (apt-get install squid)", name)
	}
	return p
}

// Squid drops root for the user "proxy" (Debian's build), and its helpers
// run as that user too: the files a fixture writes must be theirs.
var (
	proxyOnce     sync.Once
	proxyUID      = -1
	proxyGID      = -1
	proxyIDErr    error
	weAreRoot     = os.Geteuid() == 0
	proxyUserName = "proxy"
)

func proxyIDs() (int, int, error) {
	proxyOnce.Do(func() {
		u, err := user.Lookup(proxyUserName)
		if err != nil {
			proxyIDErr = err
			return
		}
		proxyUID, _ = strconv.Atoi(u.Uid)
		proxyGID, _ = strconv.Atoi(u.Gid)
	})
	return proxyUID, proxyGID, proxyIDErr
}

// shareDir makes dir and everything in it usable by Squid's user when the
// test runs as root, and opens the directories above it for traversal:
// t.TempDir's parent is created 0700.
func shareDir(t testing.TB, dir string) {
	t.Helper()
	if !weAreRoot {
		return
	}
	uid, gid, err := proxyIDs()
	if err != nil {
		t.Fatalf("testsquid: Squid runs as user %q when started as root: %v", proxyUserName, err)
	}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("testsquid: chown %s: %v", dir, err)
	}
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(dir); len(d) > len(tmp) && d != "/"; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
			t.Fatal(err)
		}
	}
}
