package testsquid

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The NTLM helper is built once per test binary into a directory that
// outlives it, one per user and test binary: go build leaves an up-to-date
// binary alone, so a later run pays for a check, not a link (0.8 s instead
// of 2.6 s measured on a loaded CI machine), and two packages' tests
// running at once never write the same file. Squid's user must be able to reach and run it, so it
// cannot live in the test's private temporary directory.
var helperBin struct {
	once sync.Once
	path string
	err  error
}

// ntlmHelper builds ./ntlmhelper once per test binary and returns its path.
func ntlmHelper(t testing.TB) string {
	t.Helper()
	helperBin.once.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("m365tap-testsquid-%d", os.Geteuid()), filepath.Base(os.Args[0]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			helperBin.err = err
			return
		}
		// Refuse a directory someone else made for us to run from.
		for d := dir; d != filepath.Clean(os.TempDir()); d = filepath.Dir(d) {
			st, err := os.Lstat(d)
			if err != nil {
				helperBin.err = err
				return
			}
			if !privateDir(st) {
				helperBin.err = fmt.Errorf("%s is not a directory of ours that only we can write", d)
				return
			}
			if err := os.Chmod(d, 0o755); err != nil {
				helperBin.err = err
				return
			}
		}
		bin := filepath.Join(dir, "ntlmhelper")
		cmd := exec.Command(goTool(), "build", "-o", bin, "github.com/m365tap/m365tap/internal/testsquid/ntlmhelper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperBin.err = fmt.Errorf("%v\n%s", err, out)
			return
		}
		helperBin.path = bin
	})
	if helperBin.err != nil {
		t.Fatalf("testsquid: building the NTLM helper: %v", helperBin.err)
	}
	return helperBin.path
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
