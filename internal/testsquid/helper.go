package testsquid

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The NTLM helper is built once per test binary and shared by every Squid
// that uses it; the last one to stop removes it. Building takes a second
// or more on a cold cache, which a package's every Squid would otherwise pay.
var helperBin struct {
	sync.Mutex
	path  string
	users int
}

// ntlmHelper builds ./ntlmhelper (if not already built) and returns its
// path, releasing it at t's cleanup.
func ntlmHelper(t testing.TB) string {
	t.Helper()
	helperBin.Lock()
	defer helperBin.Unlock()
	if helperBin.path == "" {
		dir, err := os.MkdirTemp("", "testsquid-ntlmhelper-")
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "ntlmhelper")
		cmd := exec.Command(goTool(), "build", "-o", bin, "github.com/m365tap/m365tap/internal/testsquid/ntlmhelper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("testsquid: building the NTLM helper: %v\n%s", err, out)
		}
		// Squid's user must reach and run it.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		helperBin.path = bin
	}
	helperBin.users++
	t.Cleanup(func() {
		helperBin.Lock()
		defer helperBin.Unlock()
		helperBin.users--
		if helperBin.users == 0 {
			os.RemoveAll(filepath.Dir(helperBin.path))
			helperBin.path = ""
		}
	})
	return helperBin.path
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
