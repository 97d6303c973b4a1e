//go:build !windows

package winetest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Prefix is a wine prefix made by .ci/wine/setup, for tests on Linux that
// run the tap's Windows binary under wine.
type Prefix struct {
	Dir  string // WINEPREFIX
	wine string
}

// Open returns the prefix named by M365TAP_WINEPREFIX (or /tmp/m365tap-wine),
// skipping the test when wine or the prefix is missing, and failing it
// when CI=1: .ci/run installs wine and runs .ci/wine/setup.
func Open(t testing.TB) *Prefix {
	t.Helper()
	dir := os.Getenv("M365TAP_WINEPREFIX")
	if dir == "" {
		dir = "/tmp/m365tap-wine"
	}
	wine, err := exec.LookPath("wine")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "drive_c", "windows", "system32", "bcryptprimitives.dll"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("wine prefix %s not ready (%v): .ci/run installs wine and runs .ci/wine/setup", dir, err)
		}
		// The prefix lives outside the repository: the skip says what is
		// missing, not where.
		t.Skip("wine or its prefix (M365TAP_WINEPREFIX) is not ready: run .ci/wine/setup")
	}
	pr := &Prefix{Dir: dir, wine: wine}
	// Keep wine's server up between the test's wine commands (each start
	// otherwise costs seconds), and for a minute after the last one; and
	// start wine's own background programs (services.exe and friends) from
	// a command whose output goes nowhere. Started by a test's command,
	// they would inherit its output pipe and hold it open until the server
	// exits, and exec.Cmd waits for that.
	srv := exec.Command("wineserver", "-p60")
	srv.Env = pr.Env()
	_ = srv.Run()
	boot := pr.Command("wineboot")
	boot.Stdout, boot.Stderr = nil, nil
	_ = boot.Run()
	return pr
}

// Env is the environment for a wine command: the prefix, no wine debug
// output, no Mono or Gecko installers, and extra (KEY=value) entries,
// which wine passes on to the Windows program.
func (p *Prefix) Env(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"WINEPREFIX=" + p.Dir,
		"WINEDEBUG=-all",
		"WINEDLLOVERRIDES=mscoree,mshtml=",
	}
	return append(env, extra...)
}

// Command runs a Windows program (a path on this machine, or a program of
// the prefix such as reg) under wine. Wine may start background programs
// that inherit the command's output pipes and outlive it, so Wait gives
// the pipes two seconds after the program ends; pass its error through
// Err.
func (p *Prefix) Command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(p.wine, append([]string{prog}, args...)...)
	cmd.Env = p.Env()
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Err is a Command's Wait, Run or Output error, without the one that says
// only that wine's background programs held the output pipes open.
func Err(err error) error {
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	return err
}

// Reg runs wine's reg.exe and returns its output with CRLFs made LFs.
func (p *Prefix) Reg(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := p.Command("reg", args...).CombinedOutput()
	return strings.ReplaceAll(string(out), "\r\n", "\n"), Err(err)
}
