package testsquid

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CurlResult is what one curl invocation reported for each URL.
type CurlResult struct {
	// Codes holds, per URL, the final status: the origin's (or the proxy's
	// answer to a plain request), or the proxy's answer to CONNECT when no
	// tunnel was made. 0: no answer at all.
	Codes []int
	// Exit is curl's exit status; Stderr its messages (with -v, the
	// exchange).
	Exit   int
	Stderr string
	// Elapsed is the wall time of the whole invocation.
	Elapsed time.Duration
}

// Curl runs curl with args, then the URLs, in one invocation (so they share
// a keep-alive connection), with env added to a minimal environment (no
// proxy variables). A write-out format of its own is appended, so args
// must not use -w.
func Curl(t testing.TB, env []string, args []string, urls ...string) CurlResult {
	t.Helper()
	bin := Need(t, "curl", "curl")
	const wout = `%{http_code} %{http_connect}\n`
	full := append([]string{"-sS", "--max-time", "20", "-o", "/dev/null", "-w", wout}, args...)
	// Each URL needs its own -o, or curl writes the second body to stdout.
	for i, u := range urls {
		if i > 0 {
			full = append(full, "-o", "/dev/null")
		}
		full = append(full, u)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := CurlResult{Elapsed: time.Since(start), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("testsquid: curl: %v", err)
	}
	for line := range strings.Lines(stdout.String()) {
		code, connect, _ := strings.Cut(strings.TrimSpace(line), " ")
		c, err1 := strconv.Atoi(code)
		p, err2 := strconv.Atoi(connect)
		if err1 != nil || err2 != nil {
			t.Fatalf("testsquid: curl wrote %q", line)
		}
		if c == 0 {
			c = p
		}
		r.Codes = append(r.Codes, c)
	}
	return r
}

// String is the result as a test prints it.
func (r CurlResult) String() string {
	return fmt.Sprintf("codes %v exit %d in %v", r.Codes, r.Exit, r.Elapsed.Round(time.Millisecond))
}
