package sysproxy

import (
	"bufio"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// NetIsolation is the Exempter of CheckNetIsolation.exe LoopbackExempt,
// the tool Windows ships for this (-s lists, -a adds, -d deletes; adding
// and deleting need an elevated prompt). Run is how it is started; nil
// runs the real tool.
type NetIsolation struct {
	Run func(args ...string) (string, error)
}

func (n NetIsolation) run(args ...string) (string, error) {
	if n.Run != nil {
		return n.Run(args...)
	}
	path, err := exec.LookPath("CheckNetIsolation.exe")
	if err != nil {
		return "", fmt.Errorf("%w: CheckNetIsolation.exe not found", ErrUnavailable)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

// IsExempt looks for pkg among the "Name:" lines of the list, which the
// tool prints in lower case.
func (n NetIsolation) IsExempt(pkg string) (bool, error) {
	out, err := n.run("LoopbackExempt", "-s")
	if err != nil {
		return false, toolError("LoopbackExempt -s", out, err)
	}
	return listed(out, pkg), nil
}

func (n NetIsolation) Add(pkg string) error {
	out, err := n.run("LoopbackExempt", "-a", "-n="+pkg)
	return toolError("LoopbackExempt -a", out, err)
}

func (n NetIsolation) Remove(pkg string) error {
	out, err := n.run("LoopbackExempt", "-d", "-n="+pkg)
	return toolError("LoopbackExempt -d", out, err)
}

// listed reports pkg in CheckNetIsolation's list:
//
//	[1] -----------------------------------------------------------------
//	    Name: microsoft.aad.brokerplugin_cw5n1h2txyewy
//	    SID:  S-1-15-2-...
func listed(out, pkg string) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if name, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Name:"); ok && strings.EqualFold(strings.TrimSpace(name), pkg) {
			return true
		}
	}
	return false
}

// toolError names the tool's own words; access denied (0x80070005, the
// message in any language carries the code or "denied") is elevation.
func toolError(what, out string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	text := strings.TrimSpace(out)
	if strings.Contains(text, "0x80070005") || strings.Contains(strings.ToLower(text), "denied") {
		return fmt.Errorf("CheckNetIsolation %s: %w", what, ErrNeedsElevation)
	}
	return fmt.Errorf("CheckNetIsolation %s: %v: %s", what, err, text)
}
